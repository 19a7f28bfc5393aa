/* The guest end of the transport: backoff (pure, time passed in), finding the port by name
 * in a fake /sys and /dev, and the port itself against a unix socket and a FIFO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "virtio/guest_port.h"
#include "virtio/link_backoff.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MS UINT64_C(1000000)

/* --- backoff --- */

static void backoff_table(void **state)
{
    (void)state;
    struct link_backoff b;
    link_backoff_init(&b, 100 * MS, 2000 * MS, 2000 * MS);
    static const struct {
        char what; /* 'u' up, 'd' down */
        uint64_t t_ms;
        uint64_t delay_ms;
    } steps[] = {
        {'d', 0, 100},     {'d', 100, 200},   {'d', 300, 400},   {'d', 700, 800},
        {'d', 1500, 1600}, {'d', 3100, 2000}, {'d', 5100, 2000}, /* capped */
        {'u', 7100, 0},    {'d', 7200, 2000}, /* up but not for long: still backing off */
        {'u', 9200, 0},    {'d', 11200, 100}, /* up for 2 s: healthy, start again */
        {'d', 11300, 200},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].what == 'u') {
            link_backoff_up(&b, steps[i].t_ms * MS);
            continue;
        }
        uint64_t d = link_backoff_down(&b, steps[i].t_ms * MS);
        if (d != steps[i].delay_ms * MS)
            fail_msg("step %zu: delay %llu ms, want %llu", i, (unsigned long long)(d / MS),
                     (unsigned long long)steps[i].delay_ms);
    }
    /* Nonsense limits are made sane: never a zero delay (that would spin). */
    link_backoff_init(&b, 0, 0, 0);
    assert_true(link_backoff_down(&b, 0) > 0);
    /* Many failures do not overflow. */
    link_backoff_init(&b, 1, UINT64_MAX / 2, 0);
    for (int i = 0; i < 200; i++)
        assert_true(link_backoff_down(&b, 0) <= UINT64_MAX / 2);
}

/* --- discovery --- */

static char tmp[256];

static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void mk(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void find_by_name(void **state)
{
    (void)state;
    char sys[300], dev[300], path[512], want[512];
    snprintf(tmp, sizeof(tmp), "/tmp/bellows-port-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    snprintf(sys, sizeof(sys), "%s/sys", tmp);
    snprintf(dev, sizeof(dev), "%s/dev", tmp);
    mk("sys");
    mk("dev");

    /* No virtio-ports class at all (no virtio_console module). */
    assert_int_equal(guest_port_find(sys, dev, "org.bellows.pressure.0", path, sizeof(path)),
                     -ENOENT);
    mk("sys/class");
    mk("sys/class/virtio-ports");
    mk("sys/class/virtio-ports/vport0p1");
    mk("sys/class/virtio-ports/vport1p1");
    mk("sys/class/virtio-ports/vport1p2");
    put("sys/class/virtio-ports/vport0p1/name", "org.qemu.guest_agent.0\n");
    put("sys/class/virtio-ports/vport1p1/name", "org.bellows.pressure.0\n");
    put("sys/class/virtio-ports/vport1p2/name", "org.bellows.pressure.00\n");

    assert_int_equal(guest_port_find(sys, dev, "org.bellows.pressure.0", path, sizeof(path)), 0);
    snprintf(want, sizeof(want), "%s/vport1p1", dev);
    assert_string_equal(path, want);
    assert_int_equal(guest_port_find(sys, dev, "org.bellows.pressure.00", path, sizeof(path)), 0);
    snprintf(want, sizeof(want), "%s/vport1p2", dev);
    assert_string_equal(path, want);
    assert_int_equal(guest_port_find(sys, dev, "org.bellows", path, sizeof(path)), -ENOENT);
    assert_int_equal(guest_port_find(sys, dev, "../x", path, sizeof(path)), -EINVAL);
    assert_int_equal(guest_port_find(sys, dev, "", path, sizeof(path)), -EINVAL);
    assert_int_equal(guest_port_find(sys, dev, "org.bellows.pressure.0", path, 8), -ENAMETOOLONG);

    /* udev's link wins over the scan. */
    mk("dev/virtio-ports");
    put("dev/vport9p9", "");
    char link[512];
    snprintf(link, sizeof(link), "%s/dev/virtio-ports/org.bellows.pressure.0", tmp);
    assert_int_equal(symlink("../vport9p9", link), 0);
    assert_int_equal(guest_port_find(sys, dev, "org.bellows.pressure.0", path, sizeof(path)), 0);
    assert_string_equal(path, link);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

/* --- the port on a loop --- */

struct recorder {
    int ups, downs, writables;
    int last_err;
    uint64_t last_delay_ms;
    char data[256];
    size_t data_len;
};

static void rec_up(struct guest_port *port, void *opaque)
{
    (void)port;
    ((struct recorder *)opaque)->ups++;
}

static void rec_writable(struct guest_port *port, void *opaque)
{
    (void)port;
    ((struct recorder *)opaque)->writables++;
}

static void rec_data(struct guest_port *port, const char *data, size_t len, void *opaque)
{
    struct recorder *r = opaque;
    (void)port;
    if (len > sizeof(r->data) - r->data_len)
        len = sizeof(r->data) - r->data_len;
    memcpy(r->data + r->data_len, data, len);
    r->data_len += len;
}

static void rec_down(struct guest_port *port, int err, uint64_t delay_ms, void *opaque)
{
    struct recorder *r = opaque;
    (void)port;
    r->downs++;
    r->last_err = err;
    r->last_delay_ms = delay_ms;
}

static const struct guest_port_ops rec_ops = {rec_up, rec_writable, rec_data, rec_down};

/* Run the loop until *counter reaches want, for at most about 3 s. */
static void run_until(uv_loop_t *loop, const int *counter, int want)
{
    for (int i = 0; i < 300 && *counter < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (*counter >= want)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (*counter < want)
        fail_msg("waited for %d, got %d", want, *counter);
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

/* Read exactly len bytes with a timeout. */
static void read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 3000), 1);
        ssize_t n = read(fd, buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static void closed_port(struct guest_port *port)
{
    (void)port;
}

static void port_over_unix_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/bellows-sock-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/port.sock", dir);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct recorder rec = {0};
    struct guest_port *port = malloc(sizeof(*port));
    struct guest_port_config cfg = {.device = path, .backoff_min_ms = 10, .backoff_max_ms = 40};
    assert_int_equal(guest_port_init(&loop, port, &cfg, &rec_ops, &rec), 0);

    /* Nobody listening yet: a failed attempt and a retry timer, no spinning. */
    guest_port_start(port);
    assert_int_equal(rec.ups, 0);
    assert_int_equal(rec.downs, 1);
    assert_int_equal(rec.last_err, -ENOENT);
    assert_int_equal(rec.last_delay_ms, 10);
    assert_int_equal(guest_port_send(port, "x", 1), -ENOTCONN);

    int lfd = listen_unix(path);
    run_until(&loop, &rec.ups, 1);
    int peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    assert_true(guest_port_ready(port));
    assert_int_equal(port->kind, GUEST_PORT_SOCKET);

    /* A frame arrives whole; the host's bytes come back through on_data. */
    assert_int_equal(guest_port_send(port, "\x1e{\"a\":1}\n", 9), 0);
    char buf[16];
    read_exact(peer, buf, 9);
    assert_memory_equal(buf, "\x1e{\"a\":1}\n", 9);
    assert_int_equal(write(peer, "welcome", 7), 7);
    for (int i = 0; i < 300 && rec.data_len < 7; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(rec.data, "welcome", 7);
    assert_int_equal(guest_port_send(port, "", GUEST_PORT_MAX_FRAME + 1), -EMSGSIZE);

    /* Fill the socket until a write has to wait: not ready, then on_writable once drained. */
    static char big[GUEST_PORT_MAX_FRAME];
    memset(big, 'x', sizeof(big));
    int sent = 0;
    while (guest_port_ready(port) && sent < 10000) {
        assert_int_equal(guest_port_send(port, big, sizeof(big)), 0);
        sent++;
    }
    assert_false(guest_port_ready(port));
    assert_int_equal(guest_port_send(port, big, 1), -EBUSY);
    assert_true(port->stats.eagain > 0);
    size_t total = (size_t)sent * sizeof(big), drained = 0;
    while (drained < total) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            ssize_t n = read(peer, big, sizeof(big));
            assert_true(n > 0);
            drained += (size_t)n;
        } else {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    assert_int_equal(rec.writables, 1);
    assert_true(guest_port_ready(port));

    /* The host hangs up: down with a hang-up (0), then back when it listens again. */
    close(peer);
    run_until(&loop, &rec.downs, 2);
    assert_int_equal(rec.last_err, 0);
    assert_false(guest_port_ready(port));
    run_until(&loop, &rec.ups, 2);
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    close(peer);

    /* The host goes away entirely: attempts keep failing, delays double to the cap. */
    close(lfd);
    unlink(path);
    run_until(&loop, &rec.downs, 6);
    assert_int_equal(rec.last_delay_ms, 40);
    assert_true(rec.last_err == -ENOENT);

    guest_port_close(port, closed_port);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(port);
    rmdir(dir);
}

static void port_over_fifo(void **state)
{
    (void)state;
    char dir[] = "/tmp/bellows-fifo-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/port.fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct recorder rec = {0};
    struct guest_port *port = malloc(sizeof(*port));
    struct guest_port_config cfg = {.device = path, .backoff_min_ms = 10, .backoff_max_ms = 20};
    assert_int_equal(guest_port_init(&loop, port, &cfg, &rec_ops, &rec), 0);

    guest_port_start(port);
    assert_int_equal(rec.last_err, -ENXIO); /* no reader yet */
    int reader = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(reader >= 0);
    run_until(&loop, &rec.ups, 1);
    assert_int_equal(port->kind, GUEST_PORT_FIFO);
    assert_int_equal(guest_port_send(port, "\x1e{}\n", 4), 0);
    char buf[8];
    read_exact(reader, buf, 4);
    assert_memory_equal(buf, "\x1e{}\n", 4);

    /* The reader leaves: the next write fails with EPIPE and the port goes down. */
    close(reader);
    assert_int_equal(guest_port_send(port, "\x1e{}\n", 4), 0);
    run_until(&loop, &rec.downs, 2);
    assert_int_equal(rec.last_err, -EPIPE);

    guest_port_close(port, closed_port);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(port);
    unlink(path);
    rmdir(dir);
}

static void port_not_a_device(void **state)
{
    (void)state;
    char dir[] = "/tmp/bellows-file-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/regular", dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct recorder rec = {0};
    struct guest_port *port = malloc(sizeof(*port));
    struct guest_port_config cfg = {.device = path, .backoff_min_ms = 10, .backoff_max_ms = 20};
    guest_port_init(&loop, port, &cfg, &rec_ops, &rec);
    guest_port_start(port);
    assert_int_equal(rec.last_err, -ENOTSUP);
    guest_port_close(port, closed_port);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(port);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_table),         cmocka_unit_test(find_by_name),
        cmocka_unit_test(port_over_unix_socket), cmocka_unit_test(port_over_fifo),
        cmocka_unit_test(port_not_a_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
