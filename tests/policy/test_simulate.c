/* Simulated hours of guests under the stall-driven policy, one tick per second, a report
 * every 5 s, a balloon arriving one tick after its command (or never): a guest streaming
 * through files larger than its memory (cache churn: a stall the same at any size above
 * its small hot set), an idle guest with a full page cache, a guest whose working set
 * hurts below a size the policy cannot see, and a guest whose balloon refuses pages.
 * The stall model of the churn guest follows what a real guest did (docs/benchmarks.md):
 * 25-33 % PSI some at 160-512 MiB, 34-37 % at 112-128 MiB once its hot set no longer
 * fit. */
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
#define MIN (60 * SEC)

/* A deterministic noise source: xorshift64*, values in [-1, 1]. */
static uint64_t noise_state;
static double noise(void)
{
    noise_state ^= noise_state >> 12;
    noise_state ^= noise_state << 25;
    noise_state ^= noise_state >> 27;
    uint64_t v = noise_state * 0x2545F4914F6CDD1Dull;
    return (double)(v >> 11) / (double)(UINT64_C(1) << 52) - 1.0;
}

struct model {
    const char *name;
    uint64_t ceiling, floor;
    uint64_t used;      /* MemTotal - MemAvailable */
    uint64_t ws;        /* the working set in balloon terms (used + hot cache + overhead) */
    double base;        /* stall at any size above the working set (percent) */
    double jitter;      /* +- this much per interval */
    double slope;       /* extra stall per MiB below ws + knee */
    uint64_t knee;      /* the stall starts to rise this far above ws */
    bool medium_events; /* the agent sends medium (and low) all along */
    bool refuses;       /* the balloon never takes pages */
    int minutes;
    uint64_t seed; /* the noise's start (0: the default) */
    /* a quieter spell: from spell_from to spell_to (ms) the stall is spell_pct lower */
    int64_t spell_from, spell_to;
    double spell_pct;
    /* results */
    unsigned moves, reversals, inflates;
    uint64_t end;
    int64_t within_at; /* first time within 25 % of ws, or -1 */
    uint64_t lowest;
};

static double stall_at(const struct model *m, uint64_t size, int64_t now)
{
    double pct = m->base + m->jitter * noise();
    if (now >= m->spell_from && now < m->spell_to)
        pct -= m->spell_pct;
    uint64_t start = m->ws + m->knee;
    if (size < start)
        pct += m->slope * (double)(start - size) / (double)MIB;
    if (pct < 0)
        pct = 0;
    return pct > 100 ? 100 : pct;
}

static void run(struct model *m)
{
    struct rig r;
    rig_init(&r, 1, m->floor, m->ceiling, m->ceiling);
    noise_state = m->seed ? m->seed : 0x9E3779B97F4A7C15ull;
    uint64_t pending = 0;
    bool has_pending = false;
    enum policy_action last = POLICY_HOLD;
    m->within_at = -1;
    m->lowest = m->ceiling;
    int64_t last_report = 0;
    for (r.now = 0; r.now < (int64_t)m->minutes * MIN; r.now += SEC) {
        if (has_pending) {
            if (!m->refuses || pending > r.g[0].actual_bytes)
                policy_note_actual(&r.cfg, &r.g[0], pending, r.now);
            has_pending = false;
        }
        uint64_t size = r.g[0].actual_bytes;
        if (size < m->lowest)
            m->lowest = size;
        if (m->within_at < 0 && size <= m->ws + m->ws / 4)
            m->within_at = r.now;
        if (m->medium_events && r.now % (3 * SEC) == 0)
            policy_note_event(&r.cfg, &r.g[0], r.now % (6 * SEC) ? BP_LEVEL_LOW : BP_LEVEL_MEDIUM,
                              NULL, r.now);
        if (r.now % (5 * SEC) == 0) {
            rig_report(&r, 0, stall_at(m, size, r.now), m->used, BP_LEVEL_NONE, last_report);
            last_report = r.now;
        }
        rig_decide(&r);
        const struct policy_decision *d = &r.d[0];
        if (d->action == POLICY_HOLD)
            continue;
        policy_commit(&r.cfg, &r.g[0], d, r.now);
        pending = d->to_bytes;
        has_pending = true;
        m->moves++;
        m->inflates += d->action == POLICY_INFLATE;
        if (last != POLICY_HOLD && last != d->action)
            m->reversals++;
        last = d->action;
    }
    m->end = r.g[0].actual_bytes;
    print_message("%s, %d min: %u moves (%u inflates), %u reversals, lowest %llu MiB, end %llu "
                  "MiB, working set %llu MiB, within 25 %% at %lld s\n",
                  m->name, m->minutes, m->moves, m->inflates, m->reversals,
                  (unsigned long long)(m->lowest / MIB), (unsigned long long)(m->end / MIB),
                  (unsigned long long)(m->ws / MIB),
                  (long long)(m->within_at < 0 ? -1 : m->within_at / SEC));
}

/* The quality bench's churn guest as a model: a 48 MiB hot set read again and again
 * while streaming through files larger than memory, its stall 27 % +-4 at any size down
 * to 40 MiB above its working set, medium and low events all along; seed 0: the default
 * noise. */
static struct model churn_model(const char *name, uint64_t seed)
{
    return (struct model){
        .name = name,
        .ceiling = 512 * MIB,
        .floor = 64 * MIB,
        .used = 40 * MIB,
        .ws = 40 * MIB + 48 * MIB + RIG_OVERHEAD,
        .base = 27,
        .jitter = 4,
        .slope = 0.4,
        .knee = 40 * MIB,
        .medium_events = true,
        .minutes = 60,
        .seed = seed,
    };
}

/* Streaming through files larger than memory: 27 % stall at any size, medium and low
 * events all along. It is walked down (the stall does not respond) until its hot set stops
 * fitting, backs off once, and stays just above its working set. */
static void test_cache_churn_guest_converges_to_its_working_set(void **state)
{
    (void)state;
    struct model m = churn_model("cache churn", 0);
    run(&m);
    assert_true(m.end <= m.ws + m.ws / 4); /* within 25 % of its working set */
    assert_true(m.end >= m.ws);            /* ... and not below it */
    assert_true(m.within_at >= 0 && m.within_at <= 15 * MIN);
    assert_true(m.reversals <= 4);
}

/* The same guest under 24 other noise sequences: the way down and where it stops must not
 * hang on one draw. Before the base was the stall's slow mean (it followed every dip of
 * the average) and before a medium event for a guest with a base was answered by the
 * stall backoff, one of these ended at 175 MiB with 4 reversals, and 16 other sequences
 * anywhere from 128 to 209 MiB with up to 4; the real churn guest was held at 192 MiB on
 * its noise. Each must end within 30 % of its
 * working set, not below it, with at most one reversal; most within 25 %. */
static void test_cache_churn_guest_converges_whatever_the_noise(void **state)
{
    (void)state;
    int within = 0;
    for (uint64_t k = 1; k <= 24; k++) {
        struct model m = churn_model("cache churn (seeded)", (0x9E3779B97F4A7C15ull * k) | 1);
        run(&m);
        assert_true(m.end <= m.ws + m.ws * 3 / 10);
        assert_true(m.end >= m.ws);
        assert_true(m.reversals <= 1);
        within += m.end <= m.ws + m.ws / 4;
    }
    assert_true(within >= 18);
}

/* The same guest with a quieter spell early in its walk, as the real one had (23 % at
 * 320 MiB, 17.5 % at 288 for three minutes, 21 % at 168): the base follows the spell
 * down, and once the stall is back it reads as a response to the walk's last steps,
 * unless the base rises back to its peak. Without that, these guests held at 192 MiB
 * (1.6x) for the rest of the hour. */
static void test_cache_churn_guest_after_a_quieter_spell(void **state)
{
    (void)state;
    for (uint64_t k = 0; k <= 8; k++) {
        struct model m =
            churn_model("cache churn, a quieter spell", k ? (0x9E3779B97F4A7C15ull * k) | 1 : 0);
        m.spell_from = 70 * SEC;
        m.spell_to = 180 * SEC;
        m.spell_pct = 6;
        run(&m);
        assert_true(m.end <= m.ws + m.ws / 4);
        assert_true(m.end >= m.ws);
        assert_true(m.reversals <= 1);
    }
}

/* A guest that filled its page cache at boot and idles: no stall at any size above what
 * it uses. It goes down to its buffer over used memory, with no reversal. */
static void test_idle_cache_guest_goes_down_to_its_buffer(void **state)
{
    (void)state;
    struct model m = {
        .name = "idle cache",
        .ceiling = 512 * MIB,
        .floor = 64 * MIB,
        .used = 48 * MIB,
        .ws = 48 * MIB + RIG_OVERHEAD,
        .base = 0,
        .jitter = 0,
        .slope = 2,
        .knee = 0,
        .minutes = 30,
    };
    run(&m);
    struct policy_config cfg;
    policy_config_defaults(&cfg);
    uint64_t buffer = m.used + m.used * (uint64_t)cfg.buffer_pct / 100 + RIG_OVERHEAD;
    assert_true(m.end <= buffer + cfg.min_change_bytes);
    assert_int_equal(m.reversals, 0);
    assert_true(m.within_at >= 0 && m.within_at <= 6 * MIN);
}

/* A working set the policy cannot see (no base stall; stall climbs steeply below it): it
 * backs off when the stall answers, and stays just above; once the size it hurt at is
 * forgotten (hurt_memory_ms) it tries one step below again: two reversals per try. The
 * wait before a try doubles with each reversal within flip_forget_ms, so two hours hold
 * the first back-off and three tries at most (at about 19, 49 and 103 min with seed 2):
 * 7 reversals. Whatever the noise: one seed alone once passed with a bound of 6 that
 * most seeds exceed, and an end at the working set that two seeds end 2-3 MiB under (a
 * stall 0.15 points higher there: inside the dead band, not a response). */
static void test_hidden_working_set_guest_stays_just_above_it(void **state)
{
    (void)state;
    struct policy_config cfg;
    policy_config_defaults(&cfg);
    for (uint64_t k = 0; k <= 24; k++) {
        struct model m = {
            .name = "hidden working set",
            .ceiling = 4 * GIB,
            .floor = 256 * MIB,
            .used = 512 * MIB,
            .ws = 2 * GIB,
            .base = 0.02,
            .jitter = 0.02,
            .slope = 0.05,
            .knee = 0,
            .minutes = 120,
            .seed = k ? (0x9E3779B97F4A7C15ull * k) | 1 : 0,
        };
        run(&m);
        assert_true(m.end + cfg.min_change_bytes >= m.ws);
        assert_true(m.end <= m.ws + 256 * MIB);
        assert_true(m.lowest >= m.ws - 128 * MIB);
        assert_true(m.reversals <= 7);
    }
}

/* A balloon that refuses every page: tried, found stuck, skipped with a doubling backoff
 * (5, 10, 20, 40 min...), never an inflate per round. */
static void test_refusing_guest_is_not_retried_every_round(void **state)
{
    (void)state;
    struct model m = {
        .name = "refuses pages",
        .ceiling = 4 * GIB,
        .floor = 256 * MIB,
        .used = 512 * MIB,
        .ws = 1 * GIB,
        .base = 0,
        .jitter = 0,
        .slope = 1,
        .knee = 0,
        .refuses = true,
        .minutes = 120,
    };
    run(&m);
    assert_int_equal(m.end, 4 * GIB);
    /* After the quiet minute: tries at 1, 6, 16, 36, 76 min. */
    assert_true(m.inflates >= 3);
    assert_true(m.inflates <= 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_churn_guest_converges_to_its_working_set),
        cmocka_unit_test(test_cache_churn_guest_converges_whatever_the_noise),
        cmocka_unit_test(test_cache_churn_guest_after_a_quieter_spell),
        cmocka_unit_test(test_idle_cache_guest_goes_down_to_its_buffer),
        cmocka_unit_test(test_hidden_working_set_guest_stays_just_above_it),
        cmocka_unit_test(test_refusing_guest_is_not_retried_every_round),
    };
    return cmocka_run_group_tests_name("policy-simulate", tests, NULL, NULL);
}
