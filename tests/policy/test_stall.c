/* The policy's stall-driven right-sizing, rule by rule: the stall measure per interval,
 * a stall that counts only when it lasts, backing off by a step growing with the excess, the stall
 * that does not respond to size, probes shrinking near the target, an inflate that raised the stall
 * undone, medium events weighed against the stall, reports repeating a level. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/policy/policy.h"
#include "tests/policy/rig.h"

#define MIB RIG_MIB
#define GIB RIG_GIB
#define SEC 1000

/* Default steps for a 4 GiB ceiling. */
#define INFLATE_STEP UINT64_C(85899345) /* 2 % */
#define BACKOFF_MAX UINT64_C(429496729) /* 10 % */
#define MEDIUM_STEP UINT64_C(429496729) /* 10 % */

/* One guest, reporting every 5 s with this stall from t0 to t1 (inclusive), no move. */
static void reports(struct rig *r, int64_t t0, int64_t t1, double pct, uint64_t used)
{
    for (int64_t t = t0; t <= t1; t += 5 * SEC) {
        int64_t since = r->now;
        r->now = t;
        rig_report(r, 0, pct, used, BP_LEVEL_NONE, since);
    }
}

static void expect(const struct rig *r, enum policy_action action, enum policy_reason reason)
{
    const struct policy_decision *d = &r->d[0];
    if (d->action != action || d->reason != reason)
        fail_msg("t=%lld: expected %s/%s, got %s/%s %llu -> %llu", (long long)r->now,
                 policy_action_name(action), policy_reason_name(reason),
                 policy_action_name(d->action), policy_reason_name(d->reason),
                 (unsigned long long)d->from_bytes, (unsigned long long)d->to_bytes);
}

/* The measure: one value per interval of at least stall_interval_ms, from the PSI some
 * total (faults when they say more), clamped, restarted when the counters go back, and
 * dropped when the interval overlaps a move. */
static void test_stall_measure(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
    struct policy_stall *s = &r.g[0].stall;

    reports(&r, 0, 0, 0, 512 * MIB); /* the first only marks the counters */
    assert_false(s->known);
    r.now = 3 * SEC;
    rig_report(&r, 0, 50, 512 * MIB, BP_LEVEL_NONE, 0); /* too short an interval */
    assert_false(s->known);
    r.now = 5 * SEC;
    rig_report(&r, 0, 0, 512 * MIB, BP_LEVEL_NONE, 3 * SEC);
    assert_true(s->known);
    assert_true(s->psi_seen);
    assert_true(fabs(s->last_pct - 30.0) < 0.01); /* 1.5 s of stall in 5 s */

    /* 100 major faults in 5 s at 1 ms each: 2 %, more than PSI's 1 %. */
    r.faults[0] += 100;
    r.now = 10 * SEC;
    rig_report(&r, 0, 1, 512 * MIB, BP_LEVEL_NONE, 5 * SEC);
    assert_true(fabs(s->last_pct - 2.0) < 0.01);

    /* A lying guest is clamped. */
    r.psi_us[0] += UINT64_C(1) << 50;
    r.now = 15 * SEC;
    rig_report(&r, 0, 0, 512 * MIB, BP_LEVEL_NONE, 10 * SEC);
    assert_true(s->last_pct == 100.0);

    /* Counters back to zero (the guest rebooted): a new start, no measure. */
    r.psi_us[0] = 0;
    r.faults[0] = 0;
    r.now = 20 * SEC;
    rig_report(&r, 0, 0, 512 * MIB, BP_LEVEL_NONE, 15 * SEC);
    assert_int_equal(s->last_at, 15 * SEC);
    r.now = 25 * SEC;
    rig_report(&r, 0, 4, 512 * MIB, BP_LEVEL_NONE, 20 * SEC);
    assert_int_equal(s->last_at, 25 * SEC);
    assert_true(fabs(s->last_pct - 4.0) < 0.01);

    /* A move on its way: the interval it overlaps is dropped, and the next one starts at
     * the first report after it is over. */
    struct policy_decision d = {POLICY_DEFLATE, POLICY_R_CRITICAL, 2 * GIB, 3 * GIB, 0};
    policy_commit(&r.cfg, &r.g[0], &d, 26 * SEC);
    r.now = 30 * SEC;
    rig_report(&r, 0, 50, 512 * MIB, BP_LEVEL_NONE, 25 * SEC);
    assert_int_equal(s->last_at, 25 * SEC);
    policy_note_actual(&r.cfg, &r.g[0], 3 * GIB, 31 * SEC);
    r.now = 32 * SEC;
    rig_report(&r, 0, 50, 512 * MIB, BP_LEVEL_NONE, 30 * SEC); /* began before: dropped */
    assert_int_equal(s->last_at, 25 * SEC);
    r.now = 37 * SEC;
    rig_report(&r, 0, 0.5, 512 * MIB, BP_LEVEL_NONE, 32 * SEC);
    assert_int_equal(s->last_at, 37 * SEC);
    assert_true(fabs(s->last_pct - 0.5) < 0.01);
}

/* Stall over the target in two intervals: a deflate at once, by a step growing with the
 * square of the excess (Senpai: whole at backoff_coeff times the margin), at least
 * min_change; then no second one until the first one's effect is measured. */
static void test_stall_backoff_grows_with_the_excess(void **state)
{
    (void)state;
    const struct {
        double pct;
        uint64_t step;
    } cases[] = {
        {0.15, 0}, /* under the 0.17 % target: nothing */
        {1.0, (uint64_t)((double)BACKOFF_MAX * pow(1.0 / 0.17 / 20, 2))},
        {2.0, (uint64_t)((double)BACKOFF_MAX * pow(2.0 / 0.17 / 20, 2))},
        {0.3, 16 * MIB}, /* a small excess: min_change */
        {5.0, BACKOFF_MAX},
        {90.0, BACKOFF_MAX},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct rig r;
        rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
        reports(&r, 0, 5 * SEC, 0.01, 512 * MIB); /* PSI seen, quiet */
        reports(&r, 10 * SEC, 10 * SEC, cases[k].pct, 512 * MIB);
        rig_decide(&r); /* one interval: not yet */
        assert_int_not_equal(r.d[0].action, POLICY_DEFLATE);
        reports(&r, 15 * SEC, 15 * SEC, cases[k].pct, 512 * MIB);
        rig_decide(&r);
        if (cases[k].step == 0) {
            assert_int_not_equal(r.d[0].action, POLICY_DEFLATE);
            continue;
        }
        expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
        uint64_t got = r.d[0].to_bytes - 2 * GIB;
        if (got + 1 < cases[k].step || got > cases[k].step + 1)
            fail_msg("stall %.2f %%: step %llu, expected %llu", cases[k].pct,
                     (unsigned long long)got, (unsigned long long)cases[k].step);
        rig_commit(&r, true);
        /* The next interval (the first after the move) is dropped; the one after starts
         * the measure of its effect: still over, but it is not judged yet. */
        reports(&r, 20 * SEC, 25 * SEC, cases[k].pct, 512 * MIB);
        rig_decide(&r);
        assert_int_equal(r.d[0].action, POLICY_HOLD);
        /* Both measured: the stall fell by less than half, so it does not respond to size:
         * it becomes the base, and no more is given. */
        reports(&r, 30 * SEC, 30 * SEC, cases[k].pct, 512 * MIB);
        rig_decide(&r);
        assert_int_equal(r.d[0].action, POLICY_HOLD);
        assert_true(r.g[0].stall.base_pct > 0);
    }
}

/* Memory given that cures the stall: it keeps counting as one that responds. */
static void test_stall_that_responds_keeps_its_base(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
    reports(&r, 0, 5 * SEC, 0.01, 512 * MIB);
    reports(&r, 10 * SEC, 15 * SEC, 3.0, 512 * MIB);
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
    rig_commit(&r, true);
    reports(&r, 20 * SEC, 30 * SEC, 0.05, 512 * MIB); /* cured */
    assert_true(r.g[0].stall.base_pct == 0);
    reports(&r, 35 * SEC, 40 * SEC, 3.0, 512 * MIB); /* back, and lasting: give again */
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
}

/* A deflate the budget cut (the guest got less than it asked for) that leaves the stall as
 * it was proves nothing about the size: no base, and the size it hurt at is kept, so no
 * probe takes back what it was given (a cut critical step was retaken by an "insensitive"
 * inflate and the guest's workload was OOM-killed). The same move uncut sets the base. */
static void test_cut_deflate_proves_nothing(void **state)
{
    (void)state;
    for (int cut = 0; cut < 2; cut++) {
        struct rig r;
        rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
        reports(&r, 0, 60 * SEC, 0.01, 512 * MIB); /* known for quiet_ms */
        reports(&r, 65 * SEC, 70 * SEC, 5.0, 512 * MIB);
        rig_decide(&r);
        expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
        if (cut) {
            r.d[0].wanted_bytes = r.d[0].to_bytes;
            r.d[0].to_bytes = 2 * GIB + 32 * MIB;
        }
        rig_commit(&r, true);
        reports(&r, 75 * SEC, 85 * SEC, 5.0, 512 * MIB); /* the same stall after it */
        if (cut) {
            assert_true(r.g[0].stall.base_pct == 0);
            assert_true(r.g[0].hurt_known);
            assert_int_equal(r.g[0].hurt_bytes, 2 * GIB);
        } else {
            assert_true(r.g[0].stall.base_pct > 4);
        }
    }
}

/* A guest stalling at its ceiling cannot be given more: that stall is its own, and the
 * guest is probed below it (cache churn: the stall is the same at any size). */
static void test_stall_at_the_ceiling_is_the_base(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 4 * GIB);
    reports(&r, 0, 60 * SEC, 27, 512 * MIB);
    assert_true(fabs(r.g[0].stall.base_pct - 27) < 0.5);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
    assert_int_equal(r.d[0].to_bytes, 4 * GIB - INFLATE_STEP);
    rig_commit(&r, true);
    /* The same stall after the step: measured over two intervals, then the next step. */
    reports(&r, 65 * SEC, 65 * SEC, 28, 512 * MIB);
    rig_decide(&r);
    expect(&r, POLICY_HOLD, POLICY_R_INTERVAL);
    r.g[0].last_inflate_at -= 5 * SEC; /* as if the interval were over: still measuring */
    rig_decide(&r);
    expect(&r, POLICY_HOLD, POLICY_R_MEASURING);
    r.g[0].last_inflate_at += 5 * SEC;
    reports(&r, 70 * SEC, 70 * SEC, 26, 512 * MIB);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
}

/* An inflate after which the stall rose past its margin is undone at once (at least back
 * to where it was), and the size it hurt at is remembered: the next walk stops a step
 * above it. */
static void test_probe_that_raised_the_stall_is_undone(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 4 * GIB);
    reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_QUIET);
    uint64_t probed = r.d[0].to_bytes;
    rig_commit(&r, true);
    reports(&r, 65 * SEC, 75 * SEC, 0.6, 512 * MIB); /* 0.6 % > 0.17 % */
    assert_true(r.g[0].stall.responded);
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
    assert_true(r.d[0].to_bytes >= 4 * GIB);
    rig_commit(&r, true);
    assert_true(r.g[0].hurt_known);
    assert_int_equal(r.g[0].hurt_bytes, probed);
    /* Quiet again, after the cooldown: no inflate below the hurt size plus a step. */
    reports(&r, 80 * SEC, 80 * SEC + r.cfg.deflate_cooldown_ms * 2, 0.01, 512 * MIB);
    for (int k = 0; k < 10; k++) {
        rig_decide(&r);
        if (r.d[0].action == POLICY_INFLATE) {
            assert_true(r.d[0].to_bytes >= probed + INFLATE_STEP);
            rig_commit(&r, true);
        }
        reports(&r, r.now + 5 * SEC, r.now + 15 * SEC, 0.01, 512 * MIB);
    }
    assert_int_equal(r.g[0].actual_bytes, probed + INFLATE_STEP);
}

/* One interval over the margin between quiet ones is a blip, not the guest's need: no
 * deflate and no hurt size; inflates wait for the next interval to say so (and for the
 * average to come back under the target). Where it lasts a second interval, it is a
 * stall: backed off. */
static void test_a_stall_counts_when_it_lasts(void **state)
{
    (void)state;
    for (int lasts = 0; lasts < 2; lasts++) {
        struct rig r;
        rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
        reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
        reports(&r, 65 * SEC, 65 * SEC, 0.49, 512 * MIB); /* 24 ms of 5 s */
        rig_decide(&r);
        expect(&r, POLICY_HOLD, POLICY_R_MEASURING);
        reports(&r, 70 * SEC, 70 * SEC, lasts ? 0.49 : 0.01, 512 * MIB);
        rig_decide(&r);
        if (lasts) {
            expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
            rig_commit(&r, true);
            assert_true(r.g[0].hurt_known);
        } else {
            /* Not given: the walk goes on once the average is back under the target. */
            for (int k = 0; k < 4 && r.d[0].action != POLICY_INFLATE; k++) {
                assert_int_equal(r.d[0].action, POLICY_HOLD);
                reports(&r, r.now + 5 * SEC, r.now + 5 * SEC, 0.01, 512 * MIB);
                rig_decide(&r);
            }
            expect(&r, POLICY_INFLATE, POLICY_R_QUIET);
            assert_false(r.g[0].hurt_known);
        }
    }
}

/* An inflate followed by one interval over the margin and one under it did not raise the
 * stall: the step stands. (The quality run's cache guest had a step undone, and 32 MiB
 * kept for ten minutes, for one such blip averaged over the two intervals.) */
static void test_a_blip_after_a_probe_is_not_a_response(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        struct rig r;
        rig_init(&r, 1, 1 * GIB, 4 * GIB, 4 * GIB);
        reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
        rig_decide(&r);
        expect(&r, POLICY_INFLATE, POLICY_R_QUIET);
        uint64_t probed = r.d[0].to_bytes;
        rig_commit(&r, true);
        reports(&r, 65 * SEC, 65 * SEC, order ? 0.01 : 0.6, 512 * MIB);
        reports(&r, 70 * SEC, 70 * SEC, order ? 0.6 : 0.01, 512 * MIB);
        assert_false(r.g[0].stall.eval_pending);
        assert_false(r.g[0].stall.responded);
        for (int64_t t = 70 * SEC; t <= 75 * SEC; t += 5 * SEC) {
            if (t > 70 * SEC)
                reports(&r, t, t, 0.01, 512 * MIB);
            rig_decide(&r);
            assert_int_not_equal(r.d[0].action, POLICY_DEFLATE);
        }
        assert_int_equal(r.g[0].actual_bytes, probed);
        assert_false(r.g[0].hurt_known);
    }
}

/* The direction block after a deflate ends early for a guest whose workload ended (its
 * need under half what it was at the deflate, no hurt size, its stall measured): a grower
 * that freed its memory is walked down at once, not after 200 s (or 400 after a flip).
 * A guest that hurt keeps the whole block; so does one whose need stayed. */
static void test_a_grower_that_freed_its_memory_is_walked_at_once(void **state)
{
    (void)state;
    for (int hurt = 0; hurt < 2; hurt++) {
        struct rig r;
        rig_init(&r, 1, 256 * MIB, 4 * GIB, 2 * GIB);
        reports(&r, 0, 60 * SEC, 0.01, 1980 * MIB); /* its free memory under the buffer */
        if (hurt)
            policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_CRITICAL, NULL, r.now);
        rig_decide(&r);
        expect(&r, POLICY_DEFLATE, hurt ? POLICY_R_CRITICAL : POLICY_R_BUFFER);
        rig_commit(&r, true);
        reports(&r, 65 * SEC, 125 * SEC, 0.01, 1980 * MIB); /* still using it */
        rig_decide(&r);
        expect(&r, POLICY_HOLD, POLICY_R_COOLDOWN);
        reports(&r, 130 * SEC, 135 * SEC, 0.01, 256 * MIB); /* freed */
        rig_decide(&r);
        if (hurt)
            expect(&r, POLICY_HOLD, POLICY_R_COOLDOWN);
        else
            expect(&r, POLICY_INFLATE, POLICY_R_QUIET);
    }
}

/* Probes are whole while the stall is under target / probe_coeff and shrink with the
 * square of its closeness; too small a step is not made. */
static void test_probe_steps_shrink_near_the_target(void **state)
{
    (void)state;
    const struct {
        double pct;
        enum policy_reason reason;
        uint64_t step;
    } cases[] = {
        {0.01, POLICY_R_QUIET, INFLATE_STEP},
        {0.017, POLICY_R_QUIET, INFLATE_STEP},
        {0.03, POLICY_R_QUIET, (uint64_t)((double)INFLATE_STEP * pow(0.17 / 0.3, 2))},
        {0.05, POLICY_R_NEAR_TARGET, 0},
        {0.16, POLICY_R_NEAR_TARGET, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct rig r;
        rig_init(&r, 1, 1 * GIB, 4 * GIB, 4 * GIB);
        reports(&r, 0, 60 * SEC, cases[k].pct, 512 * MIB);
        rig_decide(&r);
        expect(&r, cases[k].step ? POLICY_INFLATE : POLICY_HOLD, cases[k].reason);
        if (cases[k].step) {
            uint64_t got = 4 * GIB - r.d[0].to_bytes;
            if (got + 1 < cases[k].step || got > cases[k].step + 1)
                fail_msg("stall %.3f %%: step %llu, expected %llu", cases[k].pct,
                         (unsigned long long)got, (unsigned long long)cases[k].step);
        }
    }
}

/* Medium events while the stall is under its margin are the kernel reclaiming cache: no
 * deflate, and they do not stop the walk. With the stall over it in two intervals, medium
 * deflates. */
static void test_medium_is_weighed_against_the_stall(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 4 * GIB);
    reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
    for (int64_t t = 60 * SEC; t <= 70 * SEC; t += SEC) {
        policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, t);
        r.now = t;
        rig_decide(&r);
        assert_int_not_equal(r.d[0].action, POLICY_DEFLATE);
    }
    expect(&r, POLICY_INFLATE, POLICY_R_QUIET);

    /* Over in one interval: not yet (a blip); in two: memory helps, a medium step. */
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
    reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
    reports(&r, 65 * SEC, 65 * SEC, 5, 512 * MIB);
    for (int64_t t = 65 * SEC; t <= 68 * SEC; t += SEC)
        policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, t);
    r.now = 68 * SEC;
    rig_decide(&r);
    expect(&r, POLICY_HOLD, POLICY_R_MEASURING);
    reports(&r, 70 * SEC, 70 * SEC, 5, 512 * MIB);
    policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, 70 * SEC);
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_MEDIUM);
    assert_int_equal(r.d[0].to_bytes, 2 * GIB + MEDIUM_STEP);

    /* Over once between intervals under it: medium stays the kernel reclaiming cache. */
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
    reports(&r, 0, 60 * SEC, 0.01, 512 * MIB);
    reports(&r, 65 * SEC, 65 * SEC, 5, 512 * MIB);
    reports(&r, 70 * SEC, 70 * SEC, 0.01, 512 * MIB);
    for (int64_t t = 66 * SEC; t <= 72 * SEC; t += SEC) {
        policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, t);
        r.now = t;
        rig_decide(&r);
        assert_int_not_equal(r.d[0].action, POLICY_DEFLATE);
    }
}

/* A guest streaming through files larger than its memory (the quality bench's churn
 * guest): 27 % stall at its 512 MiB ceiling, which is its base, then probed one step
 * down (a 512 MiB guest's step: 32 MiB). */
static void churn_guest(struct rig *r)
{
    rig_init(r, 1, 64 * MIB, 512 * MIB, 512 * MIB);
    reports(r, 0, 60 * SEC, 27, 48 * MIB);
    assert_true(fabs(r->g[0].stall.base_pct - 27) < 0.5);
    rig_decide(r);
    expect(r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
    assert_int_equal(r->d[0].to_bytes, 480 * MIB);
    rig_commit(r, true);
}

/* Reports every 5 s from t0 to t1, the stall alternating lo, hi, lo... (mean between). */
static void noisy(struct rig *r, int64_t t0, int64_t t1, double lo, double hi)
{
    for (int64_t t = t0; t <= t1; t += 5 * SEC)
        reports(r, t, t, (t - t0) / (5 * SEC) % 2 ? hi : lo, 48 * MIB);
}

/* The base is the mean of the stall that does not respond, not the low tail of its noise:
 * five-second intervals that stray by 5 points either way leave it near the mean, and the
 * probe goes on by whole steps. (The base once followed every dip of the moving average:
 * the churn guest's sat 2-3 points under its stall, and the probe held it at 192 MiB
 * with its stall flat down to 160.) */
static void test_the_base_is_the_mean_of_its_noise(void **state)
{
    (void)state;
    struct rig r;
    churn_guest(&r);
    noisy(&r, 65 * SEC, 240 * SEC, 22, 32);
    assert_true(fabs(r.g[0].stall.base_pct - 27) < 1);
    assert_true(r.g[0].stall.spread_pct > 9);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
    assert_int_equal(r.d[0].to_bytes, 448 * MIB);
}

/* At its ceiling a guest's stall is all base, up or down: set from its first intervals,
 * it follows the level there. (Set from one low interval and never raised, the base of a
 * simulated churn guest sat 3 points under its stall and held it at its ceiling.) */
static void test_at_the_ceiling_the_base_is_the_level(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 64 * MIB, 512 * MIB, 512 * MIB);
    reports(&r, 0, 10 * SEC, 22, 48 * MIB);
    assert_true(fabs(r.g[0].stall.base_pct - 22) < 0.5);
    reports(&r, 15 * SEC, 70 * SEC, 27, 48 * MIB);
    assert_true(fabs(r.g[0].stall.base_pct - 27) < 1);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
}

/* A fall of the stall by more than its margin is the streaming ending: the base follows
 * at once, so what is left responds to size again, and its peak with it. */
static void test_the_base_falls_at_once_with_the_stall(void **state)
{
    (void)state;
    struct rig r;
    churn_guest(&r);
    noisy(&r, 65 * SEC, 120 * SEC, 25, 29);
    reports(&r, 125 * SEC, 130 * SEC, 1, 48 * MIB);
    assert_true(r.g[0].stall.base_pct < 10);
    /* The peak falls with it: a stall that comes back now is a response, not a spell. */
    reports(&r, 135 * SEC, 200 * SEC, 20, 48 * MIB);
    assert_true(r.g[0].stall.base_pct < 10);
}

/* A rise smaller than the intervals' spread, once it lasts, is seen by the slow level:
 * the probe holds near its target instead of walking on by the average's noise. */
static void test_a_lasting_rise_under_the_noise_holds_the_probe(void **state)
{
    (void)state;
    struct rig r;
    churn_guest(&r);
    noisy(&r, 65 * SEC, 150 * SEC, 29, 37); /* 33 % at 480 MiB: 6 points over its base */
    assert_false(r.g[0].stall.responded);
    rig_decide(&r);
    expect(&r, POLICY_HOLD, POLICY_R_NEAR_TARGET);
}

/* A base lowered by a quieter spell rises again once a full level at the size the probe
 * took the guest to says its stall is back, up to the highest level measured where all of
 * the stall was base (its ceiling here), never above: the probe then walks on. (The real
 * churn guest's stall drifted from 23 % to 17.5 % and back to 21 %, and the return held
 * it at 1.76x its working set.) */
static void test_a_base_lowered_by_a_quieter_spell_rises_to_its_peak(void **state)
{
    (void)state;
    struct rig r;
    churn_guest(&r); /* 27 % at its ceiling for a minute: the peak; then probed to 480 */
    assert_true(fabs(r.g[0].stall.base_peak_pct - 27) < 0.5);
    noisy(&r, 65 * SEC, 160 * SEC, 20, 22); /* a quieter spell: the base follows it down */
    assert_true(r.g[0].stall.base_pct < 22.5);
    noisy(&r, 165 * SEC, 195 * SEC, 29, 31); /* back, and more: read as a response */
    rig_decide(&r);
    expect(&r, POLICY_HOLD, POLICY_R_NEAR_TARGET);
    noisy(&r, 200 * SEC, 215 * SEC, 29, 31);             /* ten intervals at 480 MiB */
    assert_true(fabs(r.g[0].stall.base_pct - 27) < 0.5); /* the peak, not the 30 % here */
    noisy(&r, 220 * SEC, 230 * SEC, 25, 27);
    rig_decide(&r);
    expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
}

/* Not at a size the guest was given memory at because its stall responded: the stall
 * there is its knee's, not a quieter spell's end, and raising the base to it would walk
 * the guest back into the knee once its hurt size is forgotten. */
static void test_a_base_does_not_rise_where_memory_was_given(void **state)
{
    (void)state;
    struct rig r;
    churn_guest(&r);
    int64_t t = 65 * SEC;
    for (int step = 0; step < 3; step++, t += 15 * SEC) { /* away from its ceiling */
        noisy(&r, t, t + 10 * SEC, 26, 28);
        rig_decide(&r);
        expect(&r, POLICY_INFLATE, POLICY_R_INSENSITIVE);
        rig_commit(&r, true);
    }
    assert_int_equal(r.g[0].actual_bytes, 384 * MIB);
    noisy(&r, t, t + 95 * SEC, 20, 22); /* a quieter spell */
    t += 100 * SEC;
    reports(&r, t, t + 5 * SEC, 36, 48 * MIB); /* over its base and margin in both */
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
    rig_commit(&r, true);
    double base = r.g[0].stall.base_pct;
    reports(&r, t + 10 * SEC, t + 20 * SEC, 17, 48 * MIB); /* it responded: no base found */
    noisy(&r, t + 25 * SEC, t + 135 * SEC, 23, 25);
    assert_true(base < 23);
    assert_true(r.g[0].stall.base_pct <= base);
}

/* A guest with a base has medium events at any size: with its stall over its margin, it
 * gets the stall backoff's step (the excess decides), not a medium step; after a probe
 * that raised its stall, half that probe back (its stall rises gradually; the size it is
 * at ease at is likely between). */
static void test_a_guest_with_a_base_gives_by_its_stall(void **state)
{
    (void)state;
    for (int probed = 0; probed < 2; probed++) {
        struct rig r;
        churn_guest(&r);
        int64_t t = 65 * SEC;
        if (!probed) {
            noisy(&r, t, t + 30 * SEC, 26, 28); /* the probe's effect: none */
            t += 35 * SEC;
        }
        for (int64_t e = t; e <= t + 5 * SEC; e += SEC)
            policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, e);
        reports(&r, t, t + 5 * SEC, 45, 48 * MIB); /* over 27 + 13.5 in both */
        assert_int_equal(r.g[0].stall.responded, probed);
        rig_decide(&r);
        expect(&r, POLICY_DEFLATE, POLICY_R_STALL);
        assert_int_equal(r.d[0].to_bytes, 480 * MIB + 16 * MIB);
    }
}

/* With PSI, medium waits for a stall measure, and gives one step per measured effect:
 * a guest whose medium events go on (cache churn) gets one step, then its stall, not
 * lowered by the step, becomes its base and medium stops giving. */
static void test_medium_gives_one_step_per_measure(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 4 * GIB, 2 * GIB);
    r.psi_us[0] = 1000; /* a kernel with PSI: counted from the first snapshot */
    reports(&r, 0, 0, 0, 512 * MIB);
    int deflates = 0;
    int64_t last_report = 0;
    for (int64_t t = 0; t <= 60 * SEC; t += SEC) {
        policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_MEDIUM, NULL, t);
        if (t > 0 && t % (5 * SEC) == 0) {
            r.now = t;
            rig_report(&r, 0, 30, 512 * MIB, BP_LEVEL_MEDIUM, last_report);
            last_report = t;
        }
        r.now = t;
        rig_decide(&r);
        if (t == 4 * SEC) /* dwell over, no measure yet */
            expect(&r, POLICY_HOLD, POLICY_R_MEASURING);
        if (r.d[0].action == POLICY_DEFLATE) {
            deflates++;
            rig_commit(&r, true);
        }
    }
    assert_int_equal(deflates, 1);
    assert_true(r.g[0].stall.base_pct > 25);
}

/* A report repeating critical is an echo of the event already answered: at most medium,
 * so one episode gets one critical step; a new critical event gets the next. */
static void test_critical_report_is_an_echo(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1, 1 * GIB, 8 * GIB, 2 * GIB);
    policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_CRITICAL, NULL, 0);
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_CRITICAL);
    rig_commit(&r, true);
    for (int64_t t = 2500; t <= 5000; t += 2500) {
        r.now = t;
        rig_report(&r, 0, 0, 512 * MIB, BP_LEVEL_CRITICAL, t - 2500);
        rig_decide(&r);
        assert_int_not_equal(r.d[0].reason, POLICY_R_CRITICAL);
    }
    policy_note_event(&r.cfg, &r.g[0], BP_LEVEL_CRITICAL, NULL, 5000);
    rig_decide(&r);
    expect(&r, POLICY_DEFLATE, POLICY_R_CRITICAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stall_measure),
        cmocka_unit_test(test_stall_backoff_grows_with_the_excess),
        cmocka_unit_test(test_stall_that_responds_keeps_its_base),
        cmocka_unit_test(test_stall_at_the_ceiling_is_the_base),
        cmocka_unit_test(test_cut_deflate_proves_nothing),
        cmocka_unit_test(test_probe_that_raised_the_stall_is_undone),
        cmocka_unit_test(test_a_stall_counts_when_it_lasts),
        cmocka_unit_test(test_a_blip_after_a_probe_is_not_a_response),
        cmocka_unit_test(test_a_grower_that_freed_its_memory_is_walked_at_once),
        cmocka_unit_test(test_probe_steps_shrink_near_the_target),
        cmocka_unit_test(test_medium_is_weighed_against_the_stall),
        cmocka_unit_test(test_medium_gives_one_step_per_measure),
        cmocka_unit_test(test_critical_report_is_an_echo),
        cmocka_unit_test(test_the_base_is_the_mean_of_its_noise),
        cmocka_unit_test(test_at_the_ceiling_the_base_is_the_level),
        cmocka_unit_test(test_the_base_falls_at_once_with_the_stall),
        cmocka_unit_test(test_a_lasting_rise_under_the_noise_holds_the_probe),
        cmocka_unit_test(test_a_guest_with_a_base_gives_by_its_stall),
        cmocka_unit_test(test_a_base_lowered_by_a_quieter_spell_rises_to_its_peak),
        cmocka_unit_test(test_a_base_does_not_rise_where_memory_was_given),
    };
    return cmocka_run_group_tests_name("policy-stall", tests, NULL, NULL);
}
