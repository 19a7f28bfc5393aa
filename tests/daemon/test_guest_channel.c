/* Guest channels on a real libuv loop, against fake QEMU chardev sockets (unix sockets this
 * test listens on). One fake guest floods junk, oversized frames, invalid frames and a
 * torrent of valid ones; the other sends a hello and one critical event, which must still
 * be decoded and delivered promptly. Also: reconnect after QEMU goes away and comes back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>
#include <cmocka.h>

#include "host-daemon/channel/guest_channel.h"
#include "tests/protocol/samples.h"

/* Delivery bound for the good guest's critical event while the other floods. The path is
 * a socket write and one loop iteration; the bound leaves room for a loaded 2-core CI box. */
#define DELIVERY_BOUND_MS 100

/* A fake QEMU: listens on a socket, accepts the daemon's connection. */
struct fake_qemu {
    uv_pipe_t server;
    uv_pipe_t client;
    bool accepted;
    bool listening;
    char path[256];
    /* welcome frames read back from the daemon */
    struct bp_framer framer;
    int welcomes;
};

struct fixture {
    uv_loop_t loop;
    char dir[128];
    struct fake_qemu good, flood;
    struct guest_channel *good_gc, *flood_gc;
    int links_up;

    /* flood state */
    bool flooding;
    char *flood_buf;
    size_t flood_len;
    uv_write_t flood_req;
    uint64_t flood_frames_sent;
    uint64_t flood_started_ms;
    uint64_t flood_stopped_ms;

    uv_timer_t timer;
    int phase;
    uint64_t sent_ns, delivered_ns;
    int good_messages;
    enum bp_level good_level;
    int flood_messages;
};

static const struct guest_channel_limits limits = {
    .frame_rate = 20,
    .frame_burst = 40,
    .byte_rate = 64 * 1024,
    .byte_burst = 64 * 1024,
    .backoff_min_ms = 10,
    .backoff_max_ms = 50,
};

static size_t encode(const struct bp_msg *msg, char *buf, size_t cap)
{
    size_t len;
    assert_int_equal(bp_encode(msg, buf, cap, &len), BP_OK);
    return len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    static char storage[8192];
    (void)suggested;
    *buf = uv_buf_init(storage, sizeof(storage));
}

static void count_welcome(const char *payload, size_t len, void *opaque)
{
    struct fake_qemu *q = opaque;
    struct bp_msg msg;
    if (bp_decode(payload, len, &msg, NULL, 0) == BP_OK && msg.type == BP_MSG_WELCOME)
        q->welcomes++;
}

static void on_qemu_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_qemu *q = s->data;
    if (nread > 0)
        bp_framer_feed(&q->framer, buf->base, (size_t)nread, count_welcome, q);
}

static void on_qemu_connection(uv_stream_t *server, int status)
{
    struct fake_qemu *q = server->data;
    assert_int_equal(status, 0);
    assert_false(q->accepted);
    uv_pipe_init(server->loop, &q->client, 0);
    q->client.data = q;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&q->client), 0);
    q->accepted = true;
    bp_framer_init(&q->framer);
    uv_read_start((uv_stream_t *)&q->client, on_alloc, on_qemu_read);
}

static void qemu_listen(uv_loop_t *loop, struct fake_qemu *q, const char *dir, const char *name)
{
    snprintf(q->path, sizeof(q->path), "%s/%s", dir, name);
    unlink(q->path);
    uv_pipe_init(loop, &q->server, 0);
    q->server.data = q;
    assert_int_equal(uv_pipe_bind(&q->server, q->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&q->server, 4, on_qemu_connection), 0);
    q->listening = true;
    q->accepted = false;
}

static void qemu_write(struct fake_qemu *q, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    /* Small writes: the socket buffer takes them at once. */
    assert_int_equal(uv_try_write((uv_stream_t *)&q->client, &b, 1), (int)len);
}

static void on_message(struct guest_channel *gc, const struct bp_msg *msg, void *opaque)
{
    struct fixture *f = opaque;
    if (gc == f->good_gc) {
        f->good_messages++;
        if (msg->type == BP_MSG_PRESSURE) {
            f->good_level = msg->u.pressure.level;
            f->delivered_ns = uv_hrtime();
        }
    } else {
        f->flood_messages++;
    }
}

static void on_link(struct guest_channel *gc, bool connected, int err, void *opaque)
{
    (void)gc;
    (void)err;
    struct fixture *f = opaque;
    if (connected)
        f->links_up++;
}

static int first_rejects[2][32]; /* [good?][reason index] */
static const char *const reject_names[] = {"json",      "range",     "rate",      "junk",
                                           "oversized", "truncated", "seq_stale", "field",
                                           "version",   "type"};
static void on_first_reject(struct guest_channel *gc, const char *reason, const char *detail,
                            void *opaque)
{
    (void)detail;
    struct fixture *f = opaque;
    for (size_t i = 0; i < sizeof(reject_names) / sizeof(reject_names[0]); i++)
        if (strcmp(reason, reject_names[i]) == 0)
            first_rejects[gc == f->good_gc][i]++;
}

static int reject_count(bool good, const char *name)
{
    for (size_t i = 0; i < sizeof(reject_names) / sizeof(reject_names[0]); i++)
        if (strcmp(name, reject_names[i]) == 0)
            return first_rejects[good][i];
    return -1;
}

static void flood_more(struct fixture *f);

static void on_flood_written(uv_write_t *req, int status)
{
    struct fixture *f = req->data;
    if (status == 0)
        f->flood_frames_sent += 64;
    if (status == 0 && f->flooding)
        flood_more(f);
}

static void flood_more(struct fixture *f)
{
    uv_buf_t b = uv_buf_init(f->flood_buf, (unsigned)f->flood_len);
    f->flood_req.data = f;
    assert_int_equal(
        uv_write(&f->flood_req, (uv_stream_t *)&f->flood.client, &b, 1, on_flood_written), 0);
}

/* Start the flood: junk, an oversized frame and invalid frames, then valid frames without
 * end, written as fast as the socket takes them. */
static void start_flood(struct fixture *f)
{
    char junk[1000];
    memset(junk, 'x', sizeof(junk));
    qemu_write(&f->flood, junk, sizeof(junk));

    static char big[BP_MAX_FRAME + 1000];
    big[0] = BP_RS;
    memset(big + 1, 'a', sizeof(big) - 2);
    big[sizeof(big) - 1] = BP_LF;
    qemu_write(&f->flood, big, sizeof(big));

    const char bad[] = "\x1e{\"v\":1,\"type\":\"pressure\"\n\x1e{not json}\n";
    qemu_write(&f->flood, bad, sizeof(bad) - 1);

    /* 64 low-level pressure frames per write, again and again. */
    struct bp_msg m = sample_pressure();
    m.u.pressure.level = BP_LEVEL_LOW;
    char frame[BP_MAX_FRAME];
    size_t len = encode(&m, frame, sizeof(frame));
    f->flood_len = len * 64;
    f->flood_buf = malloc(f->flood_len);
    for (int i = 0; i < 64; i++)
        memcpy(f->flood_buf + (size_t)i * len, frame, len);
    f->flooding = true;
    f->flood_started_ms = uv_now(&f->loop);
    flood_more(f);
}

static void on_step(uv_timer_t *t)
{
    struct fixture *f = t->data;
    switch (f->phase++) {
    case 0: {
        /* The flood has run for a while: the good guest speaks. */
        char buf[2 * BP_MAX_FRAME];
        struct bp_msg hello = sample_hello();
        size_t n = encode(&hello, buf, sizeof(buf));
        struct bp_msg crit = sample_pressure();
        n += encode(&crit, buf + n, sizeof(buf) - n);
        f->sent_ns = uv_hrtime();
        qemu_write(&f->good, buf, n);
        uv_timer_start(t, on_step, 700, 0);
        break;
    }
    default:
        f->flooding = false;
        f->flood_stopped_ms = uv_now(&f->loop);
        uv_stop(&f->loop);
        break;
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void drain_and_close_loop(uv_loop_t *loop)
{
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void make_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/bellows-chan-XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(dir));
}

static void flood_does_not_delay_another_guest(void **state)
{
    (void)state;
    struct fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    make_dir(f->dir, sizeof(f->dir));
    qemu_listen(&f->loop, &f->good, f->dir, "good.sock");
    qemu_listen(&f->loop, &f->flood, f->dir, "flood.sock");

    struct bp_welcome welcome = {.protocol_version = BP_PROTOCOL_VERSION};
    struct guest_channel_callbacks cbs = {
        .on_message = on_message, .on_link = on_link, .on_first_reject = on_first_reject};
    assert_int_equal(
        guest_channel_new(&f->loop, f->good.path, &limits, &welcome, &cbs, f, &f->good_gc), 0);
    assert_int_equal(
        guest_channel_new(&f->loop, f->flood.path, &limits, &welcome, &cbs, f, &f->flood_gc), 0);
    /* Wait until both are connected and accepted. */
    while (!(f->links_up == 2 && f->good.accepted && f->flood.accepted))
        uv_run(&f->loop, UV_RUN_ONCE);

    start_flood(f);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_step, 300, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);

    /* The good guest's critical event arrived, fast. */
    assert_int_equal(f->good_level, BP_LEVEL_CRITICAL);
    uint64_t latency_ms = (f->delivered_ns - f->sent_ns) / 1000000;
    print_message("critical event delivered %.3f ms after it was sent, during the flood\n",
                  (double)(f->delivered_ns - f->sent_ns) / 1e6);
    assert_true(f->delivered_ns >= f->sent_ns);
    assert_in_range(latency_ms, 0, DELIVERY_BOUND_MS);
    const struct guest_channel_stats *gs = guest_channel_stats(f->good_gc);
    assert_int_equal(gs->hellos, 1);
    assert_int_equal(gs->pressure_events, 1);
    assert_int_equal(gs->invalid, 0);
    assert_int_equal(gs->junk_bytes, 0);
    assert_int_equal(gs->rate_limited, 0);
    assert_int_equal(gs->throttled, 0);
    assert_int_equal(f->good_messages, 2);

    /* The flooder was counted and held to its budget. */
    const struct guest_channel_stats *fs = guest_channel_stats(f->flood_gc);
    double seconds = (double)(f->flood_stopped_ms - f->flood_started_ms) / 1000.0;
    print_message("flooder: sent >= %llu frames in %.2f s; read %llu bytes, %llu frames, "
                  "%llu accepted, %llu rate-limited, %llu pauses, junk %llu, oversized %llu, "
                  "invalid %llu (%s)\n",
                  (unsigned long long)f->flood_frames_sent, seconds, (unsigned long long)fs->bytes,
                  (unsigned long long)fs->frames, (unsigned long long)fs->messages,
                  (unsigned long long)fs->rate_limited, (unsigned long long)fs->throttled,
                  (unsigned long long)fs->junk_bytes, (unsigned long long)fs->oversized,
                  (unsigned long long)fs->invalid, fs->last_error);
    assert_true(fs->junk_bytes >= 1000);
    assert_true(fs->oversized >= 1);
    assert_true(fs->invalid >= 1);
    assert_true(fs->last_error[0] != '\0');
    assert_true(fs->rate_limited > 0);
    assert_true(fs->throttled > 0);
    /* Accepted: the burst plus the rate over the flood's length, plus slack for timer
     * rounding. */
    uint64_t through = fs->messages + fs->seq_stale + fs->invalid; /* past the budget */
    assert_true((double)through <= 40 + 20 * seconds + 3);
    assert_true(through >= 40);
    assert_int_equal(f->flood_messages, (int)fs->messages);
    /* The flood repeats one seq: after the first, every accepted frame is stale. */
    assert_int_equal(fs->pressure_events, 1);
    assert_int_equal(fs->messages, 1);
    assert_true(fs->seq_stale >= 30);
    assert_true(fs->rejected[BP_ERR_JSON] >= 1);
    /* Each kind of drop was reported once for a log line, then only counted. */
    assert_int_equal(reject_count(false, "junk"), 1);
    assert_int_equal(reject_count(false, "oversized"), 1);
    assert_int_equal(reject_count(false, "rate"), 1);
    assert_int_equal(reject_count(false, "json"), 1);
    assert_int_equal(reject_count(false, "seq_stale"), 1);
    assert_int_equal(reject_count(true, "junk") + reject_count(true, "rate") +
                         reject_count(true, "json") + reject_count(true, "seq_stale"),
                     0);
    /* Bytes read are held to the byte budget too (burst + rate). */
    assert_true((double)fs->bytes <= 65536 + 65536 * seconds + 8192);
    /* The flooder sent far more than was read: the rest waits in its own socket. */
    assert_true(f->flood_frames_sent > fs->frames);
    /* The good guest got its welcome. */
    while (f->good.welcomes == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->good.welcomes, 1);

    guest_channel_close(f->good_gc);
    guest_channel_close(f->flood_gc);
    drain_and_close_loop(&f->loop);
    unlink(f->good.path);
    unlink(f->flood.path);
    rmdir(f->dir);
    free(f->flood_buf);
    free(f);
}

static void on_server_closed(uv_handle_t *h)
{
    struct fake_qemu *q = h->data;
    q->listening = false;
}

static void on_client_closed(uv_handle_t *h)
{
    struct fake_qemu *q = h->data;
    q->accepted = false;
}

static int link_events[2]; /* [0] downs, [1] ups */
static int last_link_err;  /* of the latest failed attempt */
static int drop_err;       /* of the latest established link that ended */
static bool link_up;
static void count_link(struct guest_channel *gc, bool connected, int err, void *opaque)
{
    (void)gc;
    (void)opaque;
    link_events[connected]++;
    if (!connected && link_up)
        drop_err = err;
    else if (!connected)
        last_link_err = err;
    link_up = connected;
}

static int messages_seen;
static void count_message(struct guest_channel *gc, const struct bp_msg *msg, void *opaque)
{
    (void)gc;
    (void)msg;
    (void)opaque;
    messages_seen++;
}

/* QEMU absent at first, then present; then it restarts: the channel follows. */
static void reconnects_when_qemu_restarts(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[128];
    make_dir(dir, sizeof(dir));
    struct fake_qemu q = {0};
    snprintf(q.path, sizeof(q.path), "%s/chan.sock", dir);

    struct bp_welcome welcome = {.protocol_version = BP_PROTOCOL_VERSION};
    struct guest_channel_callbacks cbs = {.on_message = count_message, .on_link = count_link};
    struct guest_channel *gc;
    assert_int_equal(guest_channel_new(&loop, q.path, &limits, &welcome, &cbs, NULL, &gc), 0);

    /* No socket yet: attempts fail with ENOENT and back off, no spin. */
    while (link_events[0] < 3)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(last_link_err, -ENOENT);
    assert_false(guest_channel_connected(gc));

    /* QEMU starts. */
    qemu_listen(&loop, &q, dir, "chan.sock");
    while (!(link_events[1] == 1 && q.accepted))
        uv_run(&loop, UV_RUN_ONCE);
    struct bp_msg m = sample_report();
    char buf[BP_MAX_FRAME];
    /* Half a frame, then QEMU dies: the partial frame must not leak into the next link. */
    size_t n = encode(&m, buf, sizeof(buf));
    qemu_write(&q, buf, n / 2);
    uv_close((uv_handle_t *)&q.client, on_client_closed);
    uv_close((uv_handle_t *)&q.server, on_server_closed);
    while (link_events[0] < 4 || q.listening || q.accepted)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(drop_err, -EPIPE);
    unlink(q.path);

    /* QEMU restarts; the channel reconnects and the next full frame decodes. */
    qemu_listen(&loop, &q, dir, "chan.sock");
    while (!(link_events[1] == 2 && q.accepted))
        uv_run(&loop, UV_RUN_ONCE);
    qemu_write(&q, buf, n);
    while (messages_seen == 0)
        uv_run(&loop, UV_RUN_ONCE);
    const struct guest_channel_stats *s = guest_channel_stats(gc);
    assert_int_equal(s->reports, 1);
    assert_int_equal(s->invalid, 0);
    assert_int_equal(s->truncated, 1); /* the half frame QEMU's death cut */
    assert_int_equal(s->connects, 2);
    assert_int_equal(s->disconnects, 1);

    guest_channel_close(gc);
    drain_and_close_loop(&loop);
    unlink(q.path);
    rmdir(dir);
}

static struct bp_msg report_seq(uint64_t seq)
{
    struct bp_msg m = sample_report();
    m.u.report.seq = seq;
    return m;
}

static struct bp_msg hello_boot(const char *boot_id)
{
    struct bp_msg m = sample_hello();
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "%s", boot_id);
    return m;
}

/* docs/protocol.md: seq per boot id; stale frames dropped, gaps counted; a new boot id
 * restarts the count; frames before any hello are used. */
static void sequence_numbers_per_boot_id(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[128];
    make_dir(dir, sizeof(dir));
    struct fake_qemu q = {0};
    qemu_listen(&loop, &q, dir, "seq.sock");
    struct bp_welcome welcome = {.protocol_version = BP_PROTOCOL_VERSION};
    struct guest_channel_callbacks cbs = {.on_message = count_message};
    struct guest_channel *gc;
    assert_int_equal(guest_channel_new(&loop, q.path, &limits, &welcome, &cbs, NULL, &gc), 0);
    while (!q.accepted || !guest_channel_connected(gc))
        uv_run(&loop, UV_RUN_ONCE);

    const struct bp_msg script[] = {
        report_seq(41),       /* before any hello: used */
        hello_boot("boot-a"), /* new boot id: count restarts */
        report_seq(5),        /* used */
        report_seq(5),        /* stale */
        report_seq(4),        /* stale */
        report_seq(9),        /* used, 3 lost */
        hello_boot("boot-a"), /* same boot (reconnect): count continues */
        report_seq(9),        /* stale */
        report_seq(10),       /* used */
        hello_boot("boot-b"), /* agent restarted */
        report_seq(1),        /* used, no gap */
    };
    char buf[16 * BP_MAX_FRAME];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
        size_t len;
        assert_int_equal(bp_encode(&script[i], buf + n, sizeof(buf) - n, &len), BP_OK);
        n += len;
    }
    messages_seen = 0;
    qemu_write(&q, buf, n);
    const struct guest_channel_stats *s = guest_channel_stats(gc);
    while (s->frames < sizeof(script) / sizeof(script[0]))
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(s->reports, 5);
    assert_int_equal(s->seq_stale, 3);
    assert_int_equal(s->seq_lost, 3);
    assert_int_equal(s->hellos, 3);
    assert_int_equal(messages_seen, 8); /* 5 reports + 3 hellos */

    guest_channel_close(gc);
    drain_and_close_loop(&loop);
    unlink(q.path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flood_does_not_delay_another_guest),
        cmocka_unit_test(reconnects_when_qemu_restarts),
        cmocka_unit_test(sequence_numbers_per_boot_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
