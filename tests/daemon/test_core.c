/* The daemon's core on a real libuv loop, with a fake balloon backend (an ops table the
 * test drives: it says ready, reports sizes, completes moves when told) and a fake QEMU
 * chardev for each guest's agent channel. What the rules of docs/design.md need: never
 * act blind after a loss, one move in flight per guest, the dry run's simulated size, the
 * host's reclaim interval, the completion by token, observers, and who may remove a
 * guest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-daemon/core/daemon.h"
#include "host-daemon/views/views.h"
#include "tests/harness/fake_balloon.h"
#include "tests/harness/fake_chardev.h"
#include "tests/harness/loop_wait.h"

#define WAIT_MS 5000
#define MIB (UINT64_C(1) << 20)

static uv_loop_t loop;

/* ---- the agent's frames, on each guest's fake chardev ---- */

static void send_hello_boot(struct fake_chardev *c, const char *boot_id)
{
    struct bp_msg m = {.type = BP_MSG_HELLO};
    m.u.hello.protocol_version = BP_PROTOCOL_VERSION;
    snprintf(m.u.hello.agent, sizeof(m.u.hello.agent), "fake-agent 1");
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "%s", boot_id);
    m.u.hello.sources = 1u << BP_SOURCE_PSI;
    fake_chardev_send(c, &m);
}

static void send_hello(struct fake_chardev *c)
{
    send_hello_boot(c, "boot-1");
}

static void send_pressure(struct fake_chardev *c, enum bp_level level)
{
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure.seq = c->seq++;
    m.u.pressure.mono_ns = 1000000000ull * c->seq;
    m.u.pressure.level = level;
    m.u.pressure.source = BP_SOURCE_PSI;
    m.u.pressure.mem.mem_total_kb = 500000;
    m.u.pressure.mem.mem_available_kb = 10000;
    m.u.pressure.mem.psi_some_avg10 = 42.5;
    fake_chardev_send(c, &m);
}

/* ---- observers ---- */

struct seen {
    int added, removed, samples, actuals, moves;
    enum bp_level last_level;
    double last_psi;
    uint64_t last_actual;
    struct decision_entry last_move;
    char last_guest[CONFIG_NAME_MAX + 1];
};

static void obs_added(void *opaque, const struct guest *g)
{
    struct seen *s = opaque;
    s->added++;
    snprintf(s->last_guest, sizeof(s->last_guest), "%s", g->name);
}

static void obs_removed(void *opaque, const struct guest *g)
{
    struct seen *s = opaque;
    s->removed++;
    snprintf(s->last_guest, sizeof(s->last_guest), "%s", g->name);
}

static void obs_sample(void *opaque, const struct guest *g, const struct daemon_sample *smp)
{
    (void)g;
    struct seen *s = opaque;
    s->samples++;
    s->last_level = smp->level;
    s->last_psi = smp->mem->psi_some_avg10;
}

static void obs_actual(void *opaque, const struct guest *g, uint64_t actual_bytes, int64_t now)
{
    (void)g;
    (void)now;
    struct seen *s = opaque;
    s->actuals++;
    s->last_actual = actual_bytes;
}

static void obs_move(void *opaque, const struct guest *g, const struct decision_entry *e)
{
    (void)g;
    struct seen *s = opaque;
    s->moves++;
    s->last_move = *e;
}

static const struct daemon_observer_ops observer_ops = {
    .guest_added = obs_added,
    .guest_removed = obs_removed,
    .sample = obs_sample,
    .actual = obs_actual,
    .move = obs_move,
};

/* ---- the world: a daemon with guests g1 (and g2) ---- */

struct world {
    char dir[64];
    struct daemon *d;
    struct fake_chardev c1, c2;
    struct seen seen;
};

/* Let every round that is due now run (kicks are 0 ms timers). */
static void settle(void)
{
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* text with every @DIR@ replaced by the test's directory, @SRC@ by the source tree's. */
static void expand(const struct world *w, const char *in, char *out, size_t cap)
{
    char src[512];
    assert_non_null(getcwd(src, sizeof(src))); /* meson runs unit tests from the source root */
    size_t n = 0;
    while (*in && n + 1 < cap) {
        const char *with = NULL;
        if (strncmp(in, "@DIR@", 5) == 0)
            with = w->dir;
        else if (strncmp(in, "@SRC@", 5) == 0)
            with = src;
        if (with) {
            n += (size_t)snprintf(out + n, cap - n, "%s", with);
            in += 5;
        } else {
            out[n++] = *in++;
        }
    }
    assert_true(n + 1 < cap);
    out[n] = '\0';
}

/* Start a daemon from config text (expand() names) with 0, 1 (g1) or 2 (g1, g2) guests in
 * it; their chardevs wait for the daemon's channels, and g1's agent says hello. */
static void start(struct world *w, const char *config, int guests)
{
    char text[4096];
    struct config cfg;
    struct config_errors errs;
    expand(w, config, text, sizeof(text));
    if (config_parse_buffer(text, strlen(text), &cfg, &errs) < 0)
        fail_msg("config: line %d: %s", errs.items[0].line, errs.items[0].message);
    fake_chardev_listen(&w->c1, &loop, w->dir, "g1.chan", 4);
    if (guests == 2)
        fake_chardev_listen(&w->c2, &loop, w->dir, "g2.chan", 4);
    w->d = daemon_new();
    assert_non_null(w->d);
    assert_int_equal(daemon_add_observer(w->d, &observer_ops, &w->seen), 0);
    assert_int_equal(daemon_start(w->d, &loop, &cfg, NULL, false, &fake_balloon_factory), 0);
    if (guests == 0)
        return;
    WAIT_FOR(w->c1.connected && (guests < 2 || w->c2.connected));
    send_hello(&w->c1);
}

#define GUEST_G1                                                                                   \
    "[guest g1]\nqmp = @DIR@/g1.qmp\nchannel = @DIR@/g1.chan\nfloor = 256M\nceiling = 2G\n"
#define GUEST_G2                                                                                   \
    "[guest g2]\nqmp = @DIR@/g2.qmp\nchannel = @DIR@/g2.chan\nfloor = 256M\nceiling = 2G\n"
#define CALM                                                                                       \
    "[daemon]\nproc_dir = @SRC@/tests/daemon/data/proc-calm\nstate_dir = @DIR@/state\n"            \
    "log_level = debug\n"
#define BUSY                                                                                       \
    "[daemon]\nproc_dir = @SRC@/tests/daemon/data/proc-busy\nstate_dir = @DIR@/state\n"            \
    "log_level = debug\n"

static int setup(void **state)
{
    static struct world w;
    memset(&w, 0, sizeof(w));
    snprintf(w.dir, sizeof(w.dir), "/tmp/bellows-core-XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_wait_init(&loop, WAIT_MS);
    fake_balloons_reset(0);
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    if (w->d)
        daemon_stop(w->d);
    if (w->c1.server.loop)
        fake_chardev_close(&w->c1);
    if (w->c2.server.loop)
        fake_chardev_close(&w->c2);
    loop_wait_close();
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        ;
    daemon_free(w->d);
    assert_int_equal(uv_loop_close(&loop), 0);
    char path[128];
    const char *files[] = {"g1.chan", "g2.chan"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", w->dir, files[i]);
        unlink(path);
    }
    rmdir(w->dir);
    return 0;
}

/* The guest as the control socket and an HTTP API would show it. */
static json_t *view(struct world *w, const char *name)
{
    struct daemon_view v;
    daemon_view(w->d, &v);
    const struct guest *g = daemon_find_guest(w->d, name);
    assert_non_null(g);
    return view_guest(&v, g, true);
}

static json_t *balloon_actual(json_t *guest)
{
    return json_object_get(json_object_get(guest, "balloon"), "actual");
}

/* ---- the tests ---- */

/* The backend said its size is no longer known: the core forgets it (never act blind),
 * and a critical event then moves nothing until ready reads the size again. */
static void lost_balloon_forgets_its_size(void **state)
{
    struct world *w = *state;
    start(w, CALM GUEST_G1, 1);
    struct fake_balloon *b = fake_balloon_of("g1");
    assert_true(b->started);
    balloon_emit_ready(&b->base, 1024 * MIB);
    settle();
    json_t *j = view(w, "g1");
    assert_int_equal(json_integer_value(balloon_actual(j)), 1024 * MIB);
    json_decref(j);

    balloon_emit_lost(&b->base, "connection reset");
    settle();
    j = view(w, "g1");
    assert_true(json_is_null(balloon_actual(j)));
    json_decref(j);

    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.samples == 1);
    settle();
    assert_int_equal(b->sets, 0);
    const struct guest *g = daemon_find_guest(w->d, "g1");
    assert_int_equal(g->last_decision.action, POLICY_HOLD);
    assert_int_equal(g->last_decision.reason, POLICY_R_UNKNOWN_ACTUAL);

    /* Ready again: the pressure still counts, and the move goes out. */
    balloon_emit_ready(&b->base, 1024 * MIB);
    WAIT_FOR(b->sets == 1);
    assert_int_equal(b->target, (1024 + 512) * MIB); /* 25 % of the 2G ceiling */
    assert_int_equal(g->balloon_connects, 2);
    struct daemon_view v;
    daemon_view(w->d, &v);
    assert_true(v.rounds >= 3); /* at least: ready, the pressure, ready again */
    assert_int_equal(registry_count(v.reg), 1);
    assert_non_null(v.host_sample);
    assert_false(v.dry_run);
}

/* A move is in flight until its completion: a round that wants another move in between
 * (here the balloon already reached the first target and the guest is in trouble again)
 * must wait for it. */
static void one_move_in_flight(void **state)
{
    struct world *w = *state;
    start(w, CALM "[policy]\ncritical_window_ms = 10ms\n" GUEST_G1, 1);
    struct fake_balloon *b = fake_balloon_of("g1");
    balloon_emit_ready(&b->base, 1024 * MIB);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(b->sets == 1);
    const struct decision_entry *e = &w->seen.last_move;
    assert_int_equal(e->reason, POLICY_R_CRITICAL);
    assert_int_equal(e->result, MOVE_PENDING);
    uint64_t first = b->target;
    assert_true(first > 1024 * MIB);

    /* QEMU moved the balloon, but its reply is not in yet; then critical pressure again,
     * past the critical window. */
    balloon_emit_actual(&b->base, first);
    usleep(20 * 1000);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.samples == 2);
    settle();
    const struct guest *g = daemon_find_guest(w->d, "g1");
    assert_int_equal(g->last_decision.action, POLICY_DEFLATE); /* decided... */
    assert_int_equal(b->sets, 1);                              /* ...not sent */

    /* The reply: the first move is done; the deflate goes out with the next round. */
    fake_balloon_complete(b, 0, NULL);
    assert_int_equal(w->seen.last_move.result, MOVE_DONE);
    assert_int_equal(w->seen.last_move.seq, 1);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(b->sets == 2);
    assert_true(b->target > first);
    assert_int_equal(w->seen.last_move.reason, POLICY_R_CRITICAL);
}

/* After a host reclaim round, the next waits host_reclaim_interval_ms, even when the
 * first one's memory has come back and other inputs make rounds run. (The guests may give
 * once known for quiet_ms: short here.) */
static void host_rounds_keep_their_interval(void **state)
{
    struct world *w = *state;
    start(w, BUSY "[policy]\nhost_reclaim_interval_ms = 1h\nquiet_ms = 300ms\n" GUEST_G1 GUEST_G2,
          2);
    struct fake_balloon *b1 = fake_balloon_of("g1"), *b2 = fake_balloon_of("g2");
    balloon_emit_ready(&b1->base, 2048 * MIB);
    balloon_emit_ready(&b2->base, 2048 * MIB);
    WAIT_FOR(b1->sets + b2->sets >= 1);
    settle();
    int sets = b1->sets + b2->sets;
    /* Every move of that round lands. */
    struct fake_balloon *bs[] = {b1, b2};
    for (size_t i = 0; i < 2; i++) {
        if (!bs[i]->pending)
            continue;
        fake_balloon_complete(bs[i], 0, NULL);
        balloon_emit_actual(&bs[i]->base, bs[i]->target);
    }
    settle();
    /* More inputs, more rounds: no second host round within the hour. */
    balloon_emit_actual(&b1->base, b1->sets ? b1->target : 2048 * MIB);
    send_pressure(&w->c1, BP_LEVEL_LOW);
    WAIT_FOR(w->seen.samples == 1);
    settle();
    assert_int_equal(b1->sets + b2->sets, sets);
    const struct guest *g2 = daemon_find_guest(w->d, "g2");
    assert_int_not_equal(g2->last_decision.reason, POLICY_R_HOST_PRESSURE);
}

/* A guest whose agent says hello with a new boot id rebooted (its QEMU and balloon the
 * same): it is just booted again, and keeps its size for quiet_ms as after a QEMU start. */
static void a_rebooted_guest_is_just_booted(void **state)
{
    struct world *w = *state;
    start(w, BUSY "[policy]\nquiet_ms = 2s\n" GUEST_G1, 1);
    struct fake_balloon *b = fake_balloon_of("g1");
    balloon_emit_ready(&b->base, 2048 * MIB);
    /* Known for quiet_ms, it gives to the busy host. */
    WAIT_FOR(b->sets == 1);
    assert_int_equal(w->seen.last_move.reason, POLICY_R_HOST_PRESSURE);
    fake_balloon_complete(b, 0, NULL);
    balloon_emit_actual(&b->base, b->target);
    settle();
    const struct guest *g = daemon_find_guest(w->d, "g1");
    assert_int_not_equal(g->last_decision.reason, POLICY_R_NOT_QUIET);

    /* The same boot again (an agent restart) changes nothing; a new one does. */
    send_hello_boot(&w->c1, "boot-1");
    balloon_emit_actual(&b->base, b->target);
    settle();
    assert_int_not_equal(g->last_decision.reason, POLICY_R_NOT_QUIET);
    send_hello_boot(&w->c1, "boot-2");
    WAIT_FOR(strcmp(g->boot_id, "boot-2") == 0);
    balloon_emit_actual(&b->base, b->target); /* an input: a decision */
    settle();
    assert_int_equal(g->last_decision.action, POLICY_HOLD);
    assert_int_equal(g->last_decision.reason, POLICY_R_NOT_QUIET);
    assert_int_equal(b->sets, 1);
}

/* Advisory mode: nothing is sent, the move is recorded as advisory, and the policy goes on
 * from the size the guest would have. */
static void dry_run_simulates_the_move(void **state)
{
    struct world *w = *state;
    start(w,
          "[daemon]\nproc_dir = @SRC@/tests/daemon/data/proc-calm\nstate_dir = "
          "@DIR@/state\ndry_run = true\n" GUEST_G1,
          1);
    struct fake_balloon *b = fake_balloon_of("g1");
    balloon_emit_ready(&b->base, 512 * MIB);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.moves == 1);
    settle();
    assert_int_equal(b->sets, 0);
    assert_int_equal(w->seen.last_move.result, MOVE_ADVISORY);
    assert_int_equal(w->seen.last_move.to_bytes, 1024 * MIB);
    json_t *j = view(w, "g1");
    assert_int_equal(json_integer_value(balloon_actual(j)), 1024 * MIB);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "last_move"), "result")), "advisory");
    json_decref(j);
    /* The echo of that burst asks for nothing more: the simulated move took effect. */
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.samples == 2);
    settle();
    assert_int_equal(w->seen.moves, 1);
}

/* A refused send fails at once with the backend's text and commits nothing; a sent move's
 * completion finds its own ring entry by token; a failure is recorded with the backend's
 * text and counted; observers hear of everything. */
static void completions_and_observers(void **state)
{
    struct world *w = *state;
    start(w, CALM GUEST_G1, 1);
    assert_int_equal(w->seen.added, 1);
    assert_string_equal(w->seen.last_guest, "g1");
    struct fake_balloon *b = fake_balloon_of("g1");
    balloon_emit_ready(&b->base, 512 * MIB);
    assert_int_equal(w->seen.actuals, 1);
    assert_int_equal(w->seen.last_actual, 512 * MIB);

    /* The backend refuses to send: failed at once, with its text, nothing in flight. */
    b->set_result = -ENOTCONN;
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.moves == 1);
    assert_int_equal(w->seen.samples, 1);
    assert_int_equal(w->seen.last_level, BP_LEVEL_CRITICAL);
    assert_true(w->seen.last_psi == 42.5);
    assert_int_equal(w->seen.last_move.result, MOVE_FAILED);
    assert_string_equal(w->seen.last_move.error, "fake refused");
    const struct guest *g = daemon_find_guest(w->d, "g1");
    assert_int_equal(g->move_errors, 1);
    assert_false(g->move_in_flight);

    /* Nothing was committed: the next event moves at once. */
    b->set_result = 0;
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(b->sets == 1);
    assert_int_equal(w->seen.moves, 2);
    assert_int_equal(w->seen.last_move.result, MOVE_PENDING);
    assert_int_equal(b->token, w->seen.last_move.seq);
    assert_int_equal(b->token, 2);

    fake_balloon_complete(b, -EREMOTEIO, "DeviceNotActive: no balloon");
    assert_int_equal(w->seen.moves, 3);
    assert_int_equal(w->seen.last_move.seq, 2);
    assert_int_equal(w->seen.last_move.result, MOVE_FAILED);
    assert_string_equal(w->seen.last_move.error, "DeviceNotActive: no balloon");
    assert_int_equal(g->move_errors, 2);
    assert_false(g->move_in_flight);
    json_t *j = view(w, "g1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "last_move"), "error")),
        "DeviceNotActive: no balloon");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "qmp"), "path")),
                        "fake"); /* the backend's own part of the view */
    json_decref(j);
}

/* Guests a module brings with its own balloon: only that module removes them; removal
 * closes the balloon (cancelling its move) and frees the guest once it is closed. */
static void sources_own_their_guests(void **state)
{
    struct world *w = *state;
    start(w, CALM, 0);
    struct config_guest cfg = {.floor_bytes = 256 * MIB, .ceiling_bytes = 2048 * MIB, .weight = 7};
    snprintf(cfg.name, sizeof(cfg.name), "dom");
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s/g1.chan", w->dir);
    struct fake_balloon *b = fake_balloon_new(&loop, "dom");
    struct daemon_guest_spec spec = {
        .cfg = &cfg, .balloon = &b->base, .source = "fakevirt", .detail = "fake domain dom"};
    char err[240];
    struct guest *g = NULL;
    assert_int_equal(daemon_add_guest(w->d, &spec, &g, err, sizeof(err)), 0);
    assert_non_null(g);
    assert_true(b->started);
    WAIT_FOR(w->c1.connected);
    send_hello(&w->c1);
    json_t *j = view(w, "dom");
    assert_string_equal(json_string_value(json_object_get(j, "source")), "fakevirt");
    json_decref(j);

    /* A second guest on the same channel path is refused, and its balloon closed. */
    struct fake_balloon *b2 = fake_balloon_new(&loop, "dup");
    snprintf(cfg.name, sizeof(cfg.name), "dup");
    spec.balloon = &b2->base;
    assert_int_equal(daemon_add_guest(w->d, &spec, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "uses one of these socket paths"));
    assert_true(b2->closed);

    assert_int_equal(daemon_remove_guest(w->d, g, NULL, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "is fake balloon of dom"));
    assert_int_equal(daemon_remove_guest(w->d, g, "other", err, sizeof(err)), -EPERM);
    assert_ptr_equal(daemon_find_guest(w->d, "dom"), g);

    balloon_emit_ready(&b->base, 512 * MIB);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(b->sets == 1);
    int freed = fake_balloons_freed();
    assert_int_equal(daemon_remove_guest(w->d, g, "fakevirt", err, sizeof(err)), 0);
    assert_null(daemon_find_guest(w->d, "dom"));
    assert_int_equal(w->seen.removed, 1);
    assert_true(b->closed);
    assert_int_equal(w->seen.moves, 1); /* the cancelled move is not reported after removal */
    WAIT_FOR(fake_balloons_freed() == freed + 1);
}

/* Pause and new limits go through the daemon's functions, into the policy state. */
static void pause_and_limits(void **state)
{
    struct world *w = *state;
    start(w, CALM GUEST_G1, 1);
    struct guest *g = daemon_find_guest(w->d, "g1");
    struct fake_balloon *b = fake_balloon_of("g1");
    balloon_emit_ready(&b->base, 512 * MIB);
    daemon_set_paused(w->d, g, true);
    send_pressure(&w->c1, BP_LEVEL_CRITICAL);
    WAIT_FOR(w->seen.samples == 1);
    settle();
    assert_int_equal(b->sets, 0);
    assert_int_equal(g->last_decision.reason, POLICY_R_PAUSED);

    struct config_guest cfg = g->cfg;
    cfg.floor_bytes = 1024 * MIB;
    cfg.weight = 250;
    daemon_set_limits(w->d, g, &cfg);
    json_t *j = view(w, "g1");
    assert_true(json_is_true(json_object_get(j, "paused")));
    assert_int_equal(json_integer_value(json_object_get(j, "floor")), 1024 * MIB);
    assert_int_equal(json_integer_value(json_object_get(j, "weight")), 250);
    json_decref(j);

    daemon_set_paused(w->d, g, false);
    WAIT_FOR(b->sets == 1); /* below the new floor, and in trouble */
    assert_int_equal(b->target, 1024 * MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lost_balloon_forgets_its_size, setup, teardown),
        cmocka_unit_test_setup_teardown(one_move_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(host_rounds_keep_their_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(a_rebooted_guest_is_just_booted, setup, teardown),
        cmocka_unit_test_setup_teardown(dry_run_simulates_the_move, setup, teardown),
        cmocka_unit_test_setup_teardown(completions_and_observers, setup, teardown),
        cmocka_unit_test_setup_teardown(sources_own_their_guests, setup, teardown),
        cmocka_unit_test_setup_teardown(pause_and_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
