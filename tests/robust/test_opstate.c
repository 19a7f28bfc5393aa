/* The operator's state in the core, on a real loop with a fake balloon backend: a guest
 * brought by a source (a libvirt domain, here a fake module's) and paused keeps its pause
 * when its VM restarts (it goes, and comes back under the same VM id, even under another
 * name), and after the daemon itself restarts; a guest the operator removes is forgotten.
 * Each guest's policy state (hurt size, reversals) rides along in the same file: kept
 * across both kinds of restart, not written at each change, refused alone when bad. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-daemon/core/daemon.h"
#include "host-daemon/state/state_store.h"
#include "tests/harness/fake_balloon.h"

static uv_loop_t loop;

/* ---- the daemon ---- */

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static char dir[64];

static struct daemon *start(void)
{
    char text[512];
    struct config cfg;
    struct config_errors errs;
    snprintf(text, sizeof(text),
             "[daemon]\nstate_dir = %s/state\ncontrol_socket = %s/ctl.sock\nlog_level = debug\n"
             "[guest filed]\nqmp = %s/f.qmp\nchannel = %s/f.chan\nfloor = 256M\nceiling = 1G\n",
             dir, dir, dir, dir);
    assert_int_equal(config_parse_buffer(text, strlen(text), &cfg, &errs), 0);
    struct daemon *d = daemon_new();
    assert_non_null(d);
    assert_int_equal(daemon_start(d, &loop, &cfg, NULL, false, &fake_balloon_factory), 0);
    return d;
}

static void stop(struct daemon *d)
{
    daemon_stop(d);
    uv_run(&loop, UV_RUN_DEFAULT); /* closes everything, writes the state's last change */
    daemon_free(d);
}

/* The VM of a source comes (back), under `name`. */
static struct guest *vm_appears(struct daemon *d, const char *name)
{
    struct config_guest cfg = {.floor_bytes = 128 << 20, .ceiling_bytes = 1 << 30, .weight = 100};
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s/%s.chan", dir, name);
    struct balloon *balloon = &fake_balloon_new(&loop, name)->base;
    struct daemon_guest_spec spec = {
        .cfg = &cfg, .balloon = balloon, .source = "fakevirt", .vm_id = UUID};
    struct guest *g = NULL;
    char err[200];
    assert_int_equal(daemon_add_guest(d, &spec, &g, err, sizeof(err)), 0);
    return g;
}

static bool paused(struct daemon *d, const char *name)
{
    struct daemon_view v;
    daemon_view(d, &v);
    const struct guest *g = daemon_find_guest(d, name);
    assert_non_null(g);
    return registry_policy_of(v.reg, g)->paused;
}

static void pause_survives_vm_and_daemon_restarts(void **state)
{
    (void)state;
    struct daemon *d = start();
    struct guest *g = vm_appears(d, "vm-one");
    assert_false(paused(d, "vm-one"));
    daemon_set_paused(d, g, true);
    daemon_set_paused(d, daemon_find_guest(d, "filed"), true);
    /* the VM stops: its source removes its guest; the state stays */
    char err[200];
    assert_int_equal(daemon_remove_guest(d, g, "fakevirt", err, sizeof(err)), 0);
    /* it starts again, even under another name: paused again, found by its VM id */
    vm_appears(d, "vm-one-renamed");
    assert_true(paused(d, "vm-one-renamed"));
    stop(d);

    /* the daemon restarts: both are paused again */
    d = start();
    assert_true(paused(d, "filed"));
    vm_appears(d, "vm-one");
    assert_true(paused(d, "vm-one"));
    /* resumed: that is kept too */
    daemon_set_paused(d, daemon_find_guest(d, "vm-one"), false);
    stop(d);
    d = start();
    vm_appears(d, "vm-one");
    assert_false(paused(d, "vm-one"));
    assert_true(paused(d, "filed"));
    stop(d);
}

/* The operator removes a run-time guest: forgotten, not added again after a restart;
 * operator limits come back, and go when the guest's source changes them. */
static void remove_forgets_and_source_limits_win(void **state)
{
    (void)state;
    struct daemon *d = start();
    struct config_guest cfg = {.floor_bytes = 300 << 20, .ceiling_bytes = 900 << 20, .weight = 5};
    snprintf(cfg.name, sizeof(cfg.name), "later");
    snprintf(cfg.qmp_path, sizeof(cfg.qmp_path), "%s/l.qmp", dir);
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s/l.chan", dir);
    struct daemon_guest_spec spec = {.cfg = &cfg};
    char err[200];
    assert_int_equal(daemon_add_guest(d, &spec, NULL, err, sizeof(err)), 0);
    struct guest *filed = daemon_find_guest(d, "filed");
    struct config_guest lim = filed->cfg;
    lim.weight = 9;
    daemon_set_operator_limits(d, filed, &lim);
    stop(d);

    d = start();
    assert_non_null(daemon_find_guest(d, "later"));
    assert_int_equal(daemon_find_guest(d, "later")->cfg.weight, 5);
    assert_int_equal(daemon_find_guest(d, "filed")->cfg.weight, 9);
    assert_int_equal(daemon_remove_guest(d, daemon_find_guest(d, "later"), NULL, err, sizeof(err)),
                     0);
    /* the source (the file, say) sets new limits: the operator's are not kept any more */
    filed = daemon_find_guest(d, "filed");
    lim = filed->cfg;
    lim.weight = 33;
    daemon_set_limits(d, filed, &lim);
    stop(d);

    d = start();
    assert_null(daemon_find_guest(d, "later"));
    assert_int_equal(daemon_find_guest(d, "filed")->cfg.weight, 100); /* the file's */
    stop(d);
}

/* ---- the policy state ---- */

static char *read_state_file(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/state/%s", dir, STATE_FILE_NAME);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The policy state of a guest, as the rounds would have left it (no agent here to drive
 * them): the test writes it through the read view. */
static struct policy_guest *policy_of(struct daemon *d, const char *name)
{
    struct daemon_view v;
    daemon_view(d, &v);
    const struct guest *g = daemon_find_guest(d, name);
    assert_non_null(g);
    return (struct policy_guest *)registry_policy_of(v.reg, g);
}

static void learnt(struct daemon *d, const char *name, uint64_t hurt, uint64_t reversals)
{
    struct policy_guest *p = policy_of(d, name);
    p->hurt_known = true;
    p->hurt_bytes = hurt;
    p->hurt_at = daemon_now(d) - 60000; /* a minute ago */
    p->reversals = reversals;
}

static void policy_state_survives_restarts(void **state)
{
    (void)state;
    struct daemon *d = start();
    learnt(d, "filed", 700 << 20, 4);
    struct guest *g = vm_appears(d, "vm-one");
    learnt(d, "vm-one", 600 << 20, 2);
    /* not written at each change: the loop turns, the file does not hold it yet */
    uv_run(&loop, UV_RUN_NOWAIT);
    const char *text = read_state_file();
    assert_true(!text || !strstr(text, "\"policy\""));

    /* the VM restarts (under another name): its hurt size and reversals come back */
    char err[200];
    assert_int_equal(daemon_remove_guest(d, g, "fakevirt", err, sizeof(err)), 0);
    vm_appears(d, "vm-one-renamed");
    struct policy_guest *p = policy_of(d, "vm-one-renamed");
    assert_true(p->hurt_known);
    assert_int_equal(p->hurt_bytes, 600 << 20);
    assert_int_equal(p->reversals, 2);
    stop(d);

    /* a clean stop wrote both; entries with nothing but a policy line */
    text = read_state_file();
    assert_non_null(text);
    assert_non_null(strstr(text, "{\"name\":\"filed\",\"policy\":\"bellows-policy-state=1 "));
    assert_non_null(strstr(text, "\"uuid\":\"" UUID "\",\"policy\":"));

    /* the daemon restarts: the file's guest at once, the VM's when it comes */
    d = start();
    p = policy_of(d, "filed");
    assert_true(p->hurt_known);
    assert_int_equal(p->hurt_bytes, 700 << 20);
    assert_int_equal(p->reversals, 4);
    assert_true(p->hurt_at <= daemon_now(d) - 60000); /* the downtime counts as elapsed */
    vm_appears(d, "vm-one");
    p = policy_of(d, "vm-one");
    assert_int_equal(p->hurt_bytes, 600 << 20);
    assert_int_equal(p->reversals, 2);
    stop(d);
}

/* A policy line this version does not read: that guest starts fresh, its pause stays, and
 * the line is not written back. */
static void bad_policy_state_is_refused_alone(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    const char *text =
        "{\"version\":2,\"guests\":[\n"
        "{\"name\":\"filed\",\"paused\":true,\"policy\":\"bellows-policy-state=9 wall=1\"},\n"
        "{\"name\":\"other\",\"policy\":7}\n]}\n";
    assert_int_equal(state_file_write(path, text, strlen(text)), 0);

    struct daemon *d = start();
    assert_true(paused(d, "filed"));
    struct policy_guest *p = policy_of(d, "filed");
    assert_false(p->hurt_known);
    assert_int_equal(p->reversals, 0);
    stop(d);
    const char *back = read_state_file();
    assert_non_null(back);
    assert_non_null(strstr(back, "{\"name\":\"filed\",\"paused\":true}"));
    assert_null(strstr(back, "policy-state=9"));
    /* the guest that is not here keeps its entry until it comes (and is told then) */
    assert_non_null(strstr(back, "\"other\""));
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/bellows-opstate-XXXXXX");
    assert_non_null(mkdtemp(dir));
    fake_balloons_reset(-ENOTCONN); /* its balloons refuse moves (none is ever ready here) */
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pause_survives_vm_and_daemon_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_forgets_and_source_limits_win, setup, teardown),
        cmocka_unit_test_setup_teardown(policy_state_survives_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_policy_state_is_refused_alone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
