/* The balloon policy, rule by rule, with stepped time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/policy.h"

#define MIB POLICY_MIB
#define GIB (1024 * MIB)

/* A guest of 4 GiB maximum, floor 1 GiB, balloon at 4 GiB, quiet, no snapshot. */
static void guest_4g(const struct policy_config *cfg, struct policy_guest *g, int64_t now)
{
    policy_guest_init(g, 1 * GIB, 4 * GIB, 100);
    policy_note_actual(cfg, g, 4 * GIB, now);
}

/* A snapshot saying the guest uses used_bytes, sized as if the balloon is at actual and the
 * kernel keeps 32 MiB to itself. */
static struct bp_mem snapshot(uint64_t actual, uint64_t used_bytes)
{
    struct bp_mem m = {0};
    uint64_t total = actual - 32 * MIB;
    m.mem_total_kb = total / 1024;
    m.mem_available_kb = (total - used_bytes) / 1024;
    m.mem_free_kb = m.mem_available_kb / 2;
    return m;
}

static struct policy_decision decide1(const struct policy_config *cfg, struct policy_host *host,
                                      struct policy_guest *g, int64_t now)
{
    struct policy_decision d;
    policy_decide(cfg, host, g, 1, now, &d);
    return d;
}

/* Decide, and if it moves, commit and let the balloon arrive at once. */
static struct policy_decision step1(const struct policy_config *cfg, struct policy_host *host,
                                    struct policy_guest *g, int64_t now)
{
    struct policy_decision d = decide1(cfg, host, g, now);
    if (d.action != POLICY_HOLD) {
        policy_commit(cfg, g, &d, now);
        policy_note_actual(cfg, g, d.to_bytes, now);
    }
    return d;
}

static void test_unknown_actual_holds(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    policy_guest_init(&g, 1 * GIB, 4 * GIB, 100);
    policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, NULL, 1000);
    struct policy_decision d = decide1(&cfg, &host, &g, 1000);
    assert_int_equal(d.action, POLICY_HOLD);
    assert_int_equal(d.reason, POLICY_R_UNKNOWN_ACTUAL);

    /* Known, then lost again: still blind. */
    policy_note_actual(&cfg, &g, 2 * GIB, 1100);
    policy_forget_actual(&g);
    d = decide1(&cfg, &host, &g, 1200);
    assert_int_equal(d.action, POLICY_HOLD);
    assert_int_equal(d.reason, POLICY_R_UNKNOWN_ACTUAL);
}

static void test_critical_deflates_at_once(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    policy_guest_init(&g, 1 * GIB, 4 * GIB, 100);
    policy_note_actual(&cfg, &g, 2 * GIB, 0);
    policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, NULL, 5000);
    struct policy_decision d = decide1(&cfg, &host, &g, 5000);
    assert_int_equal(d.action, POLICY_DEFLATE);
    assert_int_equal(d.reason, POLICY_R_CRITICAL);
    assert_int_equal(d.from_bytes, 2 * GIB);
    /* max(256 MiB, 25 % of 4 GiB) = 1 GiB */
    assert_int_equal(d.to_bytes, 3 * GIB);
}

static void test_paused_holds(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    guest_4g(&cfg, &g, 0);
    g.actual_bytes = 2 * GIB;
    g.paused = true;
    policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, NULL, 10);
    struct policy_decision d = decide1(&cfg, &host, &g, 10);
    assert_int_equal(d.action, POLICY_HOLD);
    assert_int_equal(d.reason, POLICY_R_PAUSED);
    assert_int_equal(d.to_bytes, d.from_bytes);
}

static void test_names(void **state)
{
    (void)state;
    for (int r = 0; r < POLICY_R_COUNT; r++) {
        assert_non_null(policy_reason_name((enum policy_reason)r));
        assert_string_not_equal(policy_reason_name((enum policy_reason)r), "?");
    }
    assert_string_equal(policy_reason_name(POLICY_R_COUNT), "?");
    assert_string_equal(policy_action_name(POLICY_INFLATE), "inflate");
    assert_string_equal(policy_action_name((enum policy_action)7), "?");
}

int main(void)
{
    (void)step1;
    (void)snapshot;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_actual_holds),
        cmocka_unit_test(test_critical_deflates_at_once),
        cmocka_unit_test(test_paused_holds),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
