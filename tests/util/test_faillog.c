/* Failure log limits: a line when a path starts failing or fails in a new way, at most a
 * summary a minute while the same failure repeats, one line when it recovers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host-daemon/util/faillog.h"

/* A chardev that accepts and closes at once, retried every second for ten minutes: one
 * line, then one summary a minute, each summing up the attempts since the last line. */
static void same_failure_is_summarised(void **state)
{
    (void)state;
    struct faillog f = {0};
    int new_lines = 0, summaries = 0;
    uint64_t summed = 0;

    for (int64_t t = 0; t < 600000; t += 1000) {
        enum faillog_say say = faillog_fail(&f, -EPIPE, "hang-up", t);
        if (say == FAILLOG_NEW)
            new_lines++;
        if (say == FAILLOG_SUMMARY) {
            summaries++;
            summed += f.summarised;
            assert_int_equal(f.summarised, 60); /* 59 quiet ones and this one */
        }
    }
    assert_int_equal(new_lines, 1);
    assert_int_equal(summaries, 9);
    assert_int_equal(f.total, 600);
    assert_int_equal(summed + 1 + f.repeats, 600); /* every failure told or still counted */
    assert_int_equal(f.since_ms, 0);
}

/* Another errno or another kind is a new state, logged at once; back to the first one too. */
static void change_of_state_logs(void **state)
{
    (void)state;
    struct faillog f = {0};
    assert_int_equal(faillog_fail(&f, -ENOENT, "connect", 0), FAILLOG_NEW);
    assert_int_equal(faillog_fail(&f, -ENOENT, "connect", 100), FAILLOG_QUIET);
    assert_int_equal(faillog_fail(&f, -ETIMEDOUT, "connect", 200), FAILLOG_NEW);
    assert_int_equal(faillog_fail(&f, -ETIMEDOUT, "handshake", 300), FAILLOG_NEW);
    assert_int_equal(faillog_fail(&f, -ETIMEDOUT, "handshake", 400), FAILLOG_QUIET);
    assert_int_equal(f.since_ms, 300);
    assert_int_equal(f.total, 2);
    assert_int_equal(faillog_fail(&f, -ENOENT, "connect", 500), FAILLOG_NEW);
    /* a NULL kind is the empty kind */
    assert_int_equal(faillog_fail(&f, -ENOENT, NULL, 600), FAILLOG_NEW);
    assert_int_equal(faillog_fail(&f, -ENOENT, "", 700), FAILLOG_QUIET);
}

/* Recovery is told once, and only after a failure; the next failure is new again. */
static void recovery_told_once(void **state)
{
    (void)state;
    struct faillog f = {0};
    assert_false(faillog_ok(&f, 0)); /* never failed: nothing to say */
    faillog_fail(&f, -EIO, "move", 1000);
    faillog_fail(&f, -EIO, "move", 2000);
    assert_true(faillog_ok(&f, 3000));
    assert_int_equal(f.total, 2); /* still says what the failure was */
    assert_int_equal(f.since_ms, 1000);
    assert_false(faillog_ok(&f, 4000));
    assert_int_equal(faillog_fail(&f, -EIO, "move", 5000), FAILLOG_NEW);
    assert_int_equal(f.total, 1);
}

/* The minute is counted from the last line, whatever the spacing of the failures. */
static void summary_spacing(void **state)
{
    (void)state;
    struct faillog f = {0};
    faillog_fail(&f, -EIO, "move", 0);
    assert_int_equal(faillog_fail(&f, -EIO, "move", 59999), FAILLOG_QUIET);
    assert_int_equal(faillog_fail(&f, -EIO, "move", 60000), FAILLOG_SUMMARY);
    assert_int_equal(f.summarised, 2);
    /* a long silence, then one failure: a summary at once, of that one failure */
    assert_int_equal(faillog_fail(&f, -EIO, "move", 500000), FAILLOG_SUMMARY);
    assert_int_equal(f.summarised, 1);
    assert_int_equal(faillog_fail(&f, -EIO, "move", 500001), FAILLOG_QUIET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_failure_is_summarised),
        cmocka_unit_test(change_of_state_logs),
        cmocka_unit_test(recovery_told_once),
        cmocka_unit_test(summary_spacing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
