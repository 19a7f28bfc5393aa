/* The host's per-guest frame budget: burst, sustained rate, refusal counting, clock steps. */
#include "protocol/bellows_protocol.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define MS UINT64_C(1000000)
#define S UINT64_C(1000000000)

static unsigned take(struct bp_rate *r, unsigned n, uint64_t now)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++)
        ok += bp_rate_allow(r, now);
    return ok;
}

static void test_burst_then_refuse(void **state)
{
    (void)state;
    struct bp_rate r;
    bp_rate_init(&r, 5 * S);
    assert_int_equal(take(&r, 100, 5 * S), BP_RATE_BURST);
    assert_int_equal(r.allowed, BP_RATE_BURST);
    assert_int_equal(r.dropped, 100 - BP_RATE_BURST);
    /* one frame's worth of time later, exactly one more */
    assert_int_equal(take(&r, 5, 5 * S + 1000 * MS / BP_RATE_PER_S), 1);
    assert_false(bp_rate_allow(&r, 5 * S + 1000 * MS / BP_RATE_PER_S + 49 * MS));
}

/* A flood at 1000 frames/s for 10 s gets the burst plus 20/s through, no more. */
static void test_sustained_rate(void **state)
{
    (void)state;
    struct bp_rate r;
    bp_rate_init(&r, 0);
    unsigned ok = 0;
    for (uint64_t t = 0; t < 10 * S; t += MS)
        ok += bp_rate_allow(&r, t);
    assert_int_equal(ok, BP_RATE_BURST + 10 * BP_RATE_PER_S - 1); /* the last refill is at 9.999 s */
    assert_int_equal(r.allowed + r.dropped, 10000);
}

/* An honest agent (10 frames/s, an occasional burst of 30) is never refused. */
static void test_honest_agent_never_refused(void **state)
{
    (void)state;
    struct bp_rate r;
    bp_rate_init(&r, 0);
    for (uint64_t t = 0; t < 60 * S; t += 100 * MS) {
        unsigned n = (t % (10 * S) == 0) ? 30 : 1;
        assert_int_equal(take(&r, n, t), n);
    }
    assert_int_equal(r.dropped, 0);
}

/* Idle time saves up at most one burst; a clock stepping back gives nothing. */
static void test_credit_capped_and_clock_backwards(void **state)
{
    (void)state;
    struct bp_rate r;
    bp_rate_init(&r, 0);
    assert_int_equal(take(&r, 40, 0), 40);
    assert_int_equal(take(&r, 1000, 3600 * S), BP_RATE_BURST);
    assert_int_equal(take(&r, 10, 1 * S), 0); /* backwards */
    assert_int_equal(take(&r, 10, 3600 * S + 100 * MS), 2);
    assert_int_equal(take(&r, 10, UINT64_MAX), BP_RATE_BURST < 10 ? BP_RATE_BURST : 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_sustained_rate),
        cmocka_unit_test(test_honest_agent_never_refused),
        cmocka_unit_test(test_credit_capped_and_clock_backwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
