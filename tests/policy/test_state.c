/* The policy state kept across a daemon restart: written, read back with the downtime
 * counted as elapsed, expired parts dropped, junk refused without touching the guest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/policy/policy.h"

#define MIB POLICY_MIB
#define GIB (1024 * MIB)
#define SEC 1000
#define MIN (60 * SEC)

/* A guest that has lived a while: hurt, flipped, deflated, stuck once, a stall base lowered
 * under its peak. */
static void lived(struct policy_guest *g, int64_t now)
{
    policy_guest_init(g, 1 * GIB, 4 * GIB, 100);
    g->hurt_known = true;
    g->hurt_bytes = 2 * GIB + 12345;
    g->hurt_at = now - 5 * MIN;
    g->flips = 3;
    g->last_flip_at = now - 20 * MIN;
    g->reversals = 7;
    g->last_dir = POLICY_DEFLATE;
    g->last_deflate_at = now - 10 * MIN;
    g->last_deflate_need = 900 * MIB + 7;
    g->stuck_count = 2;
    g->stuck_total = 5;
    g->stall.psi_seen = true;
    g->stall.base_pct = 21.5;
    g->stall.base_peak_pct = 27.125;
}

static void test_state_round_trip(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_guest g, back;
    char buf[POLICY_STATE_MAX];
    policy_config_defaults(&cfg);
    int64_t now = 5 * 3600 * SEC, wall = 1700000000000;
    lived(&g, now);
    int n = policy_state_format(&g, now, wall, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    print_message("state: %s\n", buf);

    /* Read back by a daemon whose clock restarted at 1000 s, 2 minutes later. */
    int64_t now2 = 1000 * SEC, down = 2 * MIN;
    policy_guest_init(&back, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &back, buf, (size_t)n, now2, wall + down), 0);
    assert_true(back.hurt_known);
    assert_int_equal(back.hurt_bytes, 2 * GIB + 12345);
    assert_int_equal(back.hurt_at, now2 - 5 * MIN - down);
    assert_int_equal(back.flips, 3);
    assert_int_equal(back.last_flip_at, now2 - 20 * MIN - down);
    assert_int_equal(back.reversals, 7);
    assert_int_equal(back.last_dir, POLICY_DEFLATE);
    assert_int_equal(back.last_deflate_at, now2 - 10 * MIN - down);
    assert_int_equal(back.last_deflate_need, 900 * MIB + 7);
    assert_int_equal(back.stuck_count, 2);
    assert_int_equal(back.stuck_total, 5);
    assert_true(back.stall.psi_seen);
    assert_true(back.stall.base_pct > 21.49 && back.stall.base_pct < 21.51);
    assert_true(back.stall.base_peak_pct > 27.12 && back.stall.base_peak_pct < 27.13);
    /* What it does not keep: the balloon, levels, snapshots. */
    assert_false(back.actual_known);
    assert_false(back.mem_known);

    /* A fresh guest writes little and reads back as fresh. */
    struct policy_guest fresh, fresh2;
    policy_guest_init(&fresh, 1 * GIB, 4 * GIB, 100);
    n = policy_state_format(&fresh, now, wall, buf, sizeof(buf));
    assert_true(n > 0);
    policy_guest_init(&fresh2, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &fresh2, buf, (size_t)n, now2, wall), 0);
    assert_memory_equal(&fresh, &fresh2, sizeof(fresh));

    /* A line written before the peak was kept: the base is the highest measured. */
    const char *old = "bellows-policy-state=1 wall=1 base=20.5";
    policy_guest_init(&back, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &back, old, strlen(old), now2, wall), 0);
    assert_true(back.stall.base_peak_pct > 20.49 && back.stall.base_peak_pct < 20.51);
}

/* The wall clock a line was written at, for pruning lines of guests gone for good. */
static void test_state_wall_read_back(void **state)
{
    (void)state;
    struct policy_guest g;
    char buf[POLICY_STATE_MAX];
    int64_t now = 5 * 3600 * SEC, wall = 1700000000123, got = 0;
    lived(&g, now);
    assert_true(policy_state_format(&g, now, wall, buf, sizeof(buf)) > 0);
    assert_int_equal(policy_state_wall(buf, &got), 0);
    assert_int_equal(got, wall);
    assert_int_equal(policy_state_wall("bellows-policy-state=1 wall=-5", &got), 0);
    assert_int_equal(got, -5);
    const char *bad[] = {"",
                         "bellows-policy-state=1",
                         "bellows-policy-state=1 reversals=2",
                         "bellows-policy-state=2 wall=5",
                         "bellows-policy-state=1 wall=5x",
                         "bellows-policy-state=1 wall=",
                         "bellows-policy-key=1 wall=5",
                         "bellows-policy-state=1 wall=99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(policy_state_wall(bad[i], &got), -EINVAL);
}

/* Downtime counts: what would have expired while the daemon was down is dropped. */
static void test_state_expires_over_the_downtime(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_guest g, back;
    char buf[POLICY_STATE_MAX];
    policy_config_defaults(&cfg);
    int64_t now = 3600 * SEC, wall = 1700000000000;
    lived(&g, now);
    int n = policy_state_format(&g, now, wall, buf, sizeof(buf));
    policy_guest_init(&back, 1 * GIB, 4 * GIB, 100);
    /* 6 minutes down: the hurt size (5 min old, kept 10 min) is forgotten, the flips (20 min
     * old, kept 60 min) are not. */
    assert_int_equal(policy_state_parse(&cfg, &back, buf, (size_t)n, 0, wall + 6 * MIN), 0);
    assert_false(back.hurt_known);
    assert_int_equal(back.flips, 3);
    /* 45 minutes down: the flips too; reversals (a counter) stay. */
    policy_guest_init(&back, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &back, buf, (size_t)n, 0, wall + 45 * MIN), 0);
    assert_int_equal(back.flips, 0);
    assert_int_equal(back.reversals, 7);
    /* A wall clock set back counts as no downtime. */
    policy_guest_init(&back, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &back, buf, (size_t)n, 0, wall - 3600 * SEC), 0);
    assert_true(back.hurt_known);
    assert_int_equal(back.hurt_at, -5 * MIN);
}

static void test_state_junk_is_refused(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_guest g, before;
    policy_config_defaults(&cfg);
    const char *junk[] = {
        "",
        "bellows-policy-state=2 wall=1",
        "bellows-policy-state=1", /* no wall clock */
        "bellows-policy-state=1 wall=x",
        "bellows-policy-state=1 wall=1 hurt=5", /* no age */
        "bellows-policy-state=1 wall=1 hurt=5@99999999999999",
        "bellows-policy-state=1 wall=1 flips=65@1",
        "bellows-policy-state=1 wall=1 dir=sideways",
        "bellows-policy-state=1 wall=1 base=101",
        "bellows-policy-state=1 wall=1 base=nan",
        "bellows-policy-state=1 wall=1 base=5 peak=-1",
        "bellows-policy-state=1 wall=1 base=5 peak=",
        "bellows-policy-state=1 wall=1 stuck=1",
        "bellows-policy-state=1 wall=1 deflated=5 need=0",
        "bellows-policy-state=1 wall=1 deflated=5 need=-1",
        "bellows-policy-state=1 wall=1 reversals=99999999999999999999999",
        "bellows-policy-state=1 wall=1 unknown=1",
        "bellows-policy-state=1 wall=1  reversals=1",
        "bellows-policy-state=1 wall=1 reversals=1x",
        "bellows-policy-state=1wall=1",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        lived(&g, 0);
        before = g;
        if (policy_state_parse(&cfg, &g, junk[i], strlen(junk[i]), 0, 0) != -EINVAL)
            fail_msg("accepted: '%s'", junk[i]);
        assert_memory_equal(&g, &before, sizeof(g));
    }
    /* Too long for a state line, or with a NUL inside. */
    char big[POLICY_STATE_MAX + 10];
    memset(big, 'a', sizeof(big));
    assert_int_equal(policy_state_parse(&cfg, &g, big, sizeof(big), 0, 0), -EINVAL);
    const char nul[] = "bellows-policy-state=1 wall=1\0 reversals=3";
    assert_int_equal(policy_state_parse(&cfg, &g, nul, sizeof(nul) - 1, 0, 0), -EINVAL);
    /* A trailing newline is fine. */
    const char ok[] = "bellows-policy-state=1 wall=1 reversals=3\n";
    assert_int_equal(policy_state_parse(&cfg, &g, ok, sizeof(ok) - 1, 0, 0), 0);
    assert_int_equal(g.reversals, 3);
}

static void test_state_format_needs_room(void **state)
{
    (void)state;
    struct policy_guest g;
    char buf[POLICY_STATE_MAX];
    lived(&g, 0);
    assert_int_equal(policy_state_format(&g, 0, 0, buf, 20), -ENOSPC);
    assert_string_equal(buf, "");
    assert_int_equal(policy_state_format(&g, 0, 0, buf, 0), -ENOSPC);
    /* The longest line fits in POLICY_STATE_MAX. */
    g.hurt_bytes = UINT64_MAX;
    g.reversals = UINT64_MAX;
    g.stuck_total = UINT64_MAX;
    g.flips = 64;
    g.stuck_count = 64;
    g.stall.base_pct = 100;
    assert_true(policy_state_format(&g, INT64_MAX / 8, -INT64_MAX / 4, buf, sizeof(buf)) > 0);
}

/* The key does not move with time, only with what is kept; and it is no state line. */
static void test_state_key_changes_with_what_is_kept(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_guest g, t;
    char k1[POLICY_STATE_MAX], k2[POLICY_STATE_MAX];
    policy_config_defaults(&cfg);
    int64_t now = 3600 * SEC;
    lived(&g, now);
    assert_true(policy_state_key(&g, k1, sizeof(k1)) > 0);
    /* time passes, levels and sizes change: the same key (the line itself would differ) */
    t = g;
    t.actual_known = true;
    t.actual_bytes = 3 * GIB;
    assert_true(policy_state_key(&t, k2, sizeof(k2)) > 0);
    assert_string_equal(k1, k2);
    /* anything kept changes it */
    t = g;
    t.reversals++;
    policy_state_key(&t, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    t = g;
    t.hurt_at += SEC;
    policy_state_key(&t, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    t = g;
    t.hurt_known = false;
    policy_state_key(&t, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    t = g;
    t.stuck_total++;
    policy_state_key(&t, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    t = g;
    t.stall.base_pct = 12.5;
    policy_state_key(&t, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    /* never read as a state line */
    policy_guest_init(&t, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_state_parse(&cfg, &t, k1, strlen(k1), now, 0), -EINVAL);
    assert_int_equal(policy_state_key(&g, k2, 8), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_wall_read_back),
        cmocka_unit_test(test_state_expires_over_the_downtime),
        cmocka_unit_test(test_state_junk_is_refused),
        cmocka_unit_test(test_state_format_needs_room),
        cmocka_unit_test(test_state_key_changes_with_what_is_kept),
    };
    return cmocka_run_group_tests_name("policy-state", tests, NULL, NULL);
}
