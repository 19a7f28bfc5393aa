/* bellowsd as a process against misbehaving peers this test plays on its own loop, and
 * what it logs meanwhile (the daemon's stderr, read line by line):
 * - a chardev that accepts and closes at once: redialled ever more slowly, a few lines;
 * - an agent repeating its hello: one line per agent or boot id, not per hello;
 * - a QMP monitor that accepts and never greets: the hung handshake is logged;
 * - a QMP monitor that refuses every move: the moves back off (1 s, 2 s, ...), one error
 *   line, then one when moves work again;
 * - a move sent to a QEMU that goes away before the balloon moved: the target is dropped
 *   when the link comes back;
 * - the operator's pause, set and add survive a restart of the daemon (state_dir).
 * The daemon's path comes from $BELLOWSD (set by meson). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>
#include <cmocka.h>

#include "tests/harness/control_client.h"
#include "tests/harness/daemon_proc.h"
#include "tests/harness/fake_chardev.h"
#include "tests/harness/loop_wait.h"
#include "tests/harness/qmp_peer.h"
#include "tests/protocol/samples.h"

#define MIB (UINT64_C(1) << 20)
#define WAIT_MS 15000 /* any single awaited event; far above what it takes */

static uv_loop_t loop;

/* A backlog for a daemon that redials every few ms (accept_and_close_chardev). */
static void chardev_listen(struct fake_chardev *c, const char *dir, const char *file)
{
    fake_chardev_listen(c, &loop, dir, file, 16);
}

static void spawn_daemon(struct daemon_proc *d, const char *config)
{
    char *args[] = {(char *)bellowsd_path(), "--config", (char *)config, NULL};
    daemon_proc_spawn(d, &loop, args, PROC_STDOUT_TO_STDERR);
}

static void stop_daemon(struct daemon_proc *d)
{
    uv_process_kill(&d->proc, SIGTERM);
    WAIT_FOR(d->exited);
    assert_int_equal(d->exit_status, 0);
}

/* Lines of the daemon's log that hold all of the given strings (NULL-terminated). */
static int count_lines(const struct daemon_proc *d, const char *first, ...)
{
    int n = 0;
    const char *line = d->log;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char copy[2048];
        snprintf(copy, sizeof(copy), "%.*s", (int)len, line);
        bool all = true;
        va_list ap;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
            all &= strstr(copy, s) != NULL;
        va_end(ap);
        n += all;
        line += len + (end ? 1 : 0);
    }
    return n;
}

static bool control_up(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    bool up = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return up;
}

/* The guest's entry in `show`. */
static json_t *show(const char *ctl, const char *name)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"cmd\":\"show\",\"name\":\"%s\"}", name);
    json_t *r = control_call(ctl, req);
    json_t *g = json_incref(json_object_get(r, "guest"));
    json_decref(r);
    return g;
}

struct world {
    char dir[128], config[256], ctl[256], state[256];
};

static void world_init(struct world *w, const char *guests, const char *extra_daemon)
{
    snprintf(w->dir, sizeof(w->dir), "%s/bellowsd-robust-XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->config, sizeof(w->config), "%s/bellowsd.conf", w->dir);
    snprintf(w->ctl, sizeof(w->ctl), "%s/ctl.sock", w->dir);
    snprintf(w->state, sizeof(w->state), "%s/state", w->dir);
    char cwd[512], text[8192];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    /* A calm host: only the guests' events move balloons. */
    snprintf(text, sizeof(text),
             "[daemon]\ncontrol_socket = %s\nstate_dir = %s\nlog_level = debug\n"
             "proc_dir = %s/tests/daemon/data/proc-calm\n%s\n%s",
             w->ctl, w->state, cwd, extra_daemon, guests);
    FILE *f = fopen(w->config, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void guest_text(char *out, size_t cap, const struct world *w, const char *name)
{
    snprintf(out, cap,
             "[guest %s]\nqmp = %s/%s.qmp\nchannel = %s/%s.chan\nfloor = 256M\nceiling = 1G\n",
             name, w->dir, name, w->dir, name);
}

static void finish(struct world *w)
{
    loop_wait_close_handles();
    uv_run(&loop, UV_RUN_NOWAIT);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
}

static struct bp_msg hello(const char *boot_id)
{
    struct bp_msg m = sample_hello();
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "%s", boot_id);
    return m;
}

static struct bp_msg critical(uint64_t seq)
{
    struct bp_msg m = sample_pressure();
    m.u.pressure.level = BP_LEVEL_CRITICAL;
    m.u.pressure.seq = seq;
    return m;
}

/* ---- tests ---- */

/* A chardev that accepts and closes at once: every connect works, yet the redials slow
 * down to reconnect_max, and the log has a handful of lines, not two per attempt. */
static void accept_and_close_chardev(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 200ms\n");
    guest_text(g, sizeof(g), &w, "flap");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct fake_chardev c;
    qmp_peer_init(&q, &loop, w.dir, "flap.qmp", QMP_NORMAL);
    qmp_peer_listen(&q);
    chardev_listen(&c, w.dir, "flap.chan");
    c.close_at_once = true; /* before the first connection: a later loop turn */
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.accepts >= 1);
    run_for(3000);
    /* 10, 20, 40, 80, 160 ms, then every 200 ms: about 15 in 3 s (every 14 ms would be
     * 200); a connection that does not stay up never resets the delay. */
    print_message("chardev accepts in 3 s: %d\n", c.accepts);
    assert_true(c.accepts >= 5 && c.accepts <= 25);
    int lines = count_lines(&d, "warning: guest flap: channel", NULL) +
                count_lines(&d, "info: guest flap: channel", NULL);
    print_message("channel lines at info and warning: %d\n", lines);
    assert_true(lines <= 3); /* failing, connected (once), maybe a different error */
    stop_daemon(&d);
    finish(&w);
}

/* An agent repeating its hello: logged once per agent and boot id. */
static void repeated_hello(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "chatty");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct fake_chardev c;
    qmp_peer_init(&q, &loop, w.dir, "chatty.qmp", QMP_NORMAL);
    qmp_peer_listen(&q);
    chardev_listen(&c, w.dir, "chatty.chan");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.connected);
    for (int i = 0; i < 30; i++) {
        struct bp_msg m = hello("boot-one");
        fake_chardev_send(&c, &m);
    }
    WAIT_FOR(count_lines(&d, "says hello", "again", NULL) >= 29);
    struct bp_msg m = hello("boot-two");
    fake_chardev_send(&c, &m);
    WAIT_FOR(count_lines(&d, "says hello", "boot-two", NULL) >= 1);
    assert_int_equal(count_lines(&d, "info: guest chatty: agent", "says hello", NULL), 2);
    stop_daemon(&d);
    finish(&w);
}

/* A monitor that accepts and never greets: a change of state from "no socket", logged. */
static void hung_handshake_logged(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "mute");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    qmp_peer_init(&q, &loop, w.dir, "mute.qmp", QMP_NO_GREETING);
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(count_lines(&d, "warning: guest mute: QMP", "No such file", NULL) == 1);
    qmp_peer_listen(&q); /* the socket appears: connected at once, then silence */
    WAIT_FOR(count_lines(&d, "warning: guest mute: QMP", "while greeting", NULL) == 1);
    assert_true(q.accepts >= 1);
    stop_daemon(&d);
    finish(&w);
}

/* Moves refused by QEMU: a balloon below its floor is moved at every round the policy
 * runs, so only the backoff spaces the attempts: 1 s, then 2 s; one error line; when QEMU
 * takes moves again, one line says so. */
static void failing_moves_back_off(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "stuck");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct fake_chardev c;
    qmp_peer_init(&q, &loop, w.dir, "stuck.qmp", QMP_REFUSE_BALLOON);
    q.actual = 128 * MIB; /* under its 256 MiB floor: a deflate to the floor, at once */
    qmp_peer_listen(&q);
    chardev_listen(&c, w.dir, "stuck.chan");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(q.balloons == 1);
    uint64_t t0 = q.balloon_ms[0];
    run_for(3500);
    print_message("moves sent in 3.5 s: %d, at +0, +%llu, +%llu ms\n", q.balloons,
                  (unsigned long long)(q.balloon_ms[1] - t0),
                  (unsigned long long)(q.balloon_ms[2] - t0));
    assert_int_equal(q.balloons, 3); /* at 0, 1 s, 3 s: not once a round */
    uint64_t gap1 = q.balloon_ms[1] - q.balloon_ms[0], gap2 = q.balloon_ms[2] - q.balloon_ms[1];
    assert_true(gap1 >= 1000 && gap1 < 1500);
    assert_true(gap2 >= 2000 && gap2 < 2500);
    assert_int_equal(count_lines(&d, "error: guest stuck: balloon command", NULL), 1);
    /* QEMU takes moves again: the next one works, and that is said once */
    q.mode = QMP_NORMAL;
    WAIT_FOR(q.balloons == 4 &&
             count_lines(&d, "guest stuck: balloon commands work again", NULL) == 1);
    assert_true(q.balloon_ms[3] - q.balloon_ms[2] >= 4000); /* still after the 4 s wait */
    assert_int_equal(q.actual, 256 * MIB);
    stop_daemon(&d);
    finish(&w);
}

/* A move acknowledged by a QEMU that is killed before the balloon moved: when the link
 * comes back the target is dropped (not shown, not built on, for ever). */
static void lost_target_dropped(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "killed");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct fake_chardev c;
    qmp_peer_init(&q, &loop, w.dir, "killed.qmp", QMP_VANISH_ON_MOVE);
    qmp_peer_listen(&q);
    chardev_listen(&c, w.dir, "killed.chan");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.connected && q.accepts == 1 && count_lines(&d, "QMP", "ready", NULL) >= 1);
    q.mode = QMP_VANISH_ON_MOVE;
    struct bp_msg m = critical(1);
    fake_chardev_send(&c, &m);
    WAIT_FOR(q.balloons == 1);
    q.mode = QMP_NORMAL; /* the new QEMU is well; its balloon is where it was */
    WAIT_FOR(q.accepts == 2 && count_lines(&d, "dropped; deciding again", NULL) == 1);
    json_t *gj = show(w.ctl, "killed");
    json_t *balloon = json_object_get(gj, "balloon");
    assert_non_null(balloon);
    assert_true(json_is_null(json_object_get(balloon, "target")));
    json_decref(gj);
    stop_daemon(&d);
    finish(&w);
}

/* pause, set and add survive a restart; resume and remove are kept too. */
static void operator_state_survives_restart(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "filed");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(control_up(w.ctl));
    json_decref(control_call(w.ctl, "{\"cmd\":\"pause\",\"name\":\"filed\"}"));
    char add[512];
    snprintf(add, sizeof(add),
             "{\"cmd\":\"add\",\"name\":\"later\",\"qmp\":\"%s/later.qmp\",\"channel\":\"%s/"
             "later.chan\",\"floor\":\"300M\",\"ceiling\":\"900M\"}",
             w.dir, w.dir);
    json_t *r = control_call(w.ctl, add);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = control_call(w.ctl, "{\"cmd\":\"set\",\"name\":\"filed\",\"weight\":7}");
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    /* written off the loop: wait for the file to say it */
    char path[300], text[4096];
    snprintf(path, sizeof(path), "%s/state.json", w.state);
    for (;;) {
        FILE *sf = fopen(path, "r");
        size_t n = sf ? fread(text, 1, sizeof(text) - 1, sf) : 0;
        if (sf)
            fclose(sf);
        text[n] = '\0';
        if (strstr(text, "\"later\"") && strstr(text, "\"weight\":7"))
            break;
        run_for(20);
    }
    stop_daemon(&d);

    static struct daemon_proc d2;
    spawn_daemon(&d2, w.config);
    WAIT_FOR(control_up(w.ctl) && count_lines(&d2, "started:", NULL) == 1);
    json_t *filed = show(w.ctl, "filed");
    assert_true(json_is_true(json_object_get(filed, "paused")));
    assert_int_equal(json_integer_value(json_object_get(filed, "weight")), 7);
    json_decref(filed);
    json_t *later = show(w.ctl, "later");
    assert_non_null(later);
    assert_string_equal(json_string_value(json_object_get(later, "source")), "runtime");
    assert_int_equal(json_integer_value(json_object_get(later, "floor")), 300 * MIB);
    json_decref(later);
    /* resume and remove are kept too */
    json_decref(control_call(w.ctl, "{\"cmd\":\"resume\",\"name\":\"filed\"}"));
    json_decref(control_call(w.ctl, "{\"cmd\":\"remove\",\"name\":\"later\"}"));
    stop_daemon(&d2);
    static struct daemon_proc d3;
    spawn_daemon(&d3, w.config);
    WAIT_FOR(control_up(w.ctl) && count_lines(&d3, "started:", NULL) == 1);
    filed = show(w.ctl, "filed");
    assert_true(json_is_false(json_object_get(filed, "paused")));
    json_decref(filed);
    r = control_call(w.ctl, "{\"cmd\":\"show\",\"name\":\"later\"}");
    assert_true(json_is_false(json_object_get(r, "ok")));
    json_decref(r);
    stop_daemon(&d3);
    finish(&w);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_wait_init(&loop, WAIT_MS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    daemon_proc_kill_leftover();
    loop_wait_close();
    loop_wait_close_handles();
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(accept_and_close_chardev, setup, teardown),
        cmocka_unit_test_setup_teardown(repeated_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(hung_handshake_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_moves_back_off, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_target_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(operator_state_survives_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
