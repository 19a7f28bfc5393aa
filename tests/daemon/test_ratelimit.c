/* The token bucket with stepped time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host-daemon/util/ratelimit.h"

#define MS UINT64_C(1000000)
#define S UINT64_C(1000000000)

static void burst_then_refuse(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 20, 40);
    uint64_t now = 1000 * S;
    for (int i = 0; i < 40; i++)
        assert_true(ratelimit_take(&rl, 1, now));
    assert_false(ratelimit_take(&rl, 1, now));
    /* One frame costs 50 ms at 20/s. */
    assert_int_equal(ratelimit_wait_ns(&rl, 1, now), 50 * MS);
    assert_false(ratelimit_take(&rl, 1, now + 49 * MS));
    assert_true(ratelimit_take(&rl, 1, now + 50 * MS));
    assert_false(ratelimit_take(&rl, 1, now + 50 * MS));
}

static void steady_rate_is_sustained(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 20, 40);
    uint64_t now = 5 * S;
    /* 20 per second for 10 s, one every 50 ms: never refused. */
    for (int i = 0; i < 200; i++)
        assert_true(ratelimit_take(&rl, 1, now + (uint64_t)i * 50 * MS));
}

static void flood_gets_only_the_rate(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 20, 40);
    uint64_t start = 7 * S;
    unsigned allowed = 0;
    /* 10000 attempts per second for 3 s: burst 40 plus 20/s. */
    for (uint64_t t = 0; t < 3 * S; t += 100000)
        allowed += ratelimit_take(&rl, 1, start + t);
    assert_in_range(allowed, 40 + 59, 40 + 61);
}

static void refill_caps_at_burst(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 20, 40);
    uint64_t now = 10 * S;
    assert_true(ratelimit_take(&rl, 40, now));
    /* An hour of silence refills only to the burst. */
    now += 3600 * S;
    assert_true(ratelimit_take(&rl, 40, now));
    assert_false(ratelimit_take(&rl, 1, now));
}

static void bytes_and_huge_requests(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 65536, 65536);
    uint64_t now = S;
    assert_true(ratelimit_take(&rl, 4096, now));
    assert_false(ratelimit_take(&rl, 65536, now)); /* only 61440 left */
    assert_true(ratelimit_take(&rl, 61440, now));
    assert_false(ratelimit_take(&rl, UINT64_MAX, now)); /* no overflow */
    assert_int_equal(ratelimit_wait_ns(&rl, UINT64_MAX, now), UINT64_MAX);
    /* Nothing is charged by a refused request. */
    assert_true(ratelimit_take(&rl, 4096, now + S / 16));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refuse),        cmocka_unit_test(steady_rate_is_sustained),
        cmocka_unit_test(flood_gets_only_the_rate), cmocka_unit_test(refill_caps_at_burst),
        cmocka_unit_test(bytes_and_huge_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
