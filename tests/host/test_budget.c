/* The host budget: cgroup v1 and v2 files read from fixtures (tests/data/cgroup), number
 * parsing, and the arithmetic (reserve, non-guest use kept for a window). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/host/budget.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static void test_parse_number(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(budget_parse_number("1073741824\n", 11, &v), 0);
    assert_int_equal(v, GIB);
    assert_int_equal(budget_parse_number("max\n", 4, &v), 0);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(budget_parse_number("0", 1, &v), 0);
    assert_int_equal(v, 0);
    v = 7;
    const char *bad[] = {"", "\n", "-1", "12a", "0x10", "18446744073709551616", "maxi", " 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(budget_parse_number(bad[i], strlen(bad[i]), &v), -EINVAL);
    assert_int_equal(v, 7);
}

static void test_read_cgroup(void **state)
{
    (void)state;
    struct budget_cgroup c;
    assert_int_equal(budget_read_cgroup("tests/data/cgroup/v1", &c), 0);
    assert_false(c.v2);
    assert_int_equal(c.limit_bytes, 1600 * MIB);
    assert_int_equal(c.usage_bytes, 1234567168);
    assert_false(c.has_psi);

    assert_int_equal(budget_read_cgroup("tests/data/cgroup/v2", &c), 0);
    assert_true(c.v2);
    assert_int_equal(c.limit_bytes, GIB);
    assert_int_equal(c.usage_bytes, 768 * MIB);
    assert_true(c.has_psi);
    assert_true(c.psi.some.avg10 == 1.5);
    assert_int_equal(c.psi.some.total_us, 123456);

    assert_int_equal(budget_read_cgroup("tests/data/cgroup/v2-unlimited", &c), 0);
    assert_true(c.limit_bytes >= BUDGET_UNLIMITED);
    assert_false(c.has_psi);

    memset(&c, 0x5a, sizeof(c));
    struct budget_cgroup before = c;
    assert_int_equal(budget_read_cgroup("tests/data/cgroup/bad", &c), -EINVAL);
    assert_int_equal(budget_read_cgroup("tests/data/cgroup/none", &c), -ENOENT);
    assert_memory_equal(&c, &before, sizeof(c));
}

/* Budget = total - max(reserve, pct) - the largest non-guest use in the window. */
static void test_compute(void **state)
{
    (void)state;
    struct budget_settings s = {.reserve_bytes = 256 * MIB, .reserve_pct = 10};
    struct budget_state st = {0};
    assert_int_equal(budget_reserve(&s, 1 * GIB), 256 * MIB);
    assert_int_equal(budget_reserve(&s, 10 * GIB), GIB);

    /* A cgroup of 10 GiB using 6 GiB, the guests' balloons 5.5 GiB: 512 MiB not theirs. */
    struct budget_inputs in = {
        .total_bytes = 10 * GIB, .used_bytes = 6 * GIB, .guest_bytes = 5 * GIB + 512 * MIB};
    assert_int_equal(budget_compute(&s, &st, &in, 0), 10 * GIB - GIB - 512 * MIB);
    /* A guest given 1 GiB it has not touched: non-guest looks like 0, the 512 MiB stay. */
    in.guest_bytes = 6 * GIB + 512 * MIB;
    assert_int_equal(budget_compute(&s, &st, &in, 60000), 10 * GIB - GIB - 512 * MIB);
    /* More non-guest use counts at once. */
    in.used_bytes = 7 * GIB + 512 * MIB;
    assert_int_equal(budget_compute(&s, &st, &in, 120000), 10 * GIB - GIB - GIB);
    /* Less counts once the window since the largest has passed. */
    in.used_bytes = 6 * GIB + 512 * MIB;
    assert_int_equal(budget_compute(&s, &st, &in, 120000 + BUDGET_NONGUEST_WINDOW_MS - 1),
                     10 * GIB - GIB - GIB);
    assert_int_equal(budget_compute(&s, &st, &in, 120000 + BUDGET_NONGUEST_WINDOW_MS),
                     10 * GIB - GIB);
    /* A guest that has not touched its memory hides its overhead: at least guest_overhead
     * per guest counts as not the guests'. */
    s.guest_overhead = 200 * MIB;
    in.guests = 4;
    in.used_bytes = 6 * GIB + 612 * MIB; /* 100 MiB more than the balloons hold */
    assert_int_equal(budget_compute(&s, &st, &in, 130 * 60000), 10 * GIB - GIB - 800 * MIB);
    s.guest_overhead = 0;
    assert_int_equal(budget_compute(&s, &st, &in, 130 * 60000 + 1), 10 * GIB - GIB - 100 * MIB);
    /* Nothing left: 0, never a wrap. */
    s.reserve_pct = 100;
    assert_int_equal(budget_compute(&s, &st, &in, 10 * BUDGET_NONGUEST_WINDOW_MS), 0);
    s.reserve_bytes = UINT64_MAX;
    in.used_bytes = UINT64_MAX;
    in.guest_bytes = 0;
    assert_int_equal(budget_compute(&s, &st, &in, 20 * BUDGET_NONGUEST_WINDOW_MS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_number),
        cmocka_unit_test(test_read_cgroup),
        cmocka_unit_test(test_compute),
    };
    return cmocka_run_group_tests_name("host-budget", tests, NULL, NULL);
}
